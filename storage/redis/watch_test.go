package redis

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage/storagetest"
)

// next returns the next key from ch, failing the test after a deadline.
func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case k, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported within 10s")
		return ""
	}
}

func TestWatchReportsChangesOfOtherClients(t *testing.T) {
	s := newTestStorage(t)
	o := peer(t, s)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/1", "a/2/x", "b"} {
		if err := o.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		if got := next(t, ch); got != k {
			t.Fatalf("watch reported %q, want %q", got, k)
		}
	}
	if err := o.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	got := []string{next(t, ch), next(t, ch)}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a/1", "a/2/x"}) {
		t.Fatalf("deleting a subtree reported %q", got)
	}
	cancel()
	for range ch { // closed when ctx ends
	}
}

func TestWatchChannelsCloseOnClose(t *testing.T) {
	addr := testAddr(t)
	before := runtime.NumGoroutine()
	prefix := randomPrefix(t)
	s, err := New(testCtx(t), Config{Addr: addr, Prefix: prefix, LockTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deletePrefix(t, prefix) })
	ch1, err := s.Watch(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := s.Watch(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(testCtx(t), "held-at-close"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan string{ch1, ch2} {
		for range ch {
		}
	}
	if _, err := s.Watch(testCtx(t)); err == nil {
		t.Fatal("Watch after Close succeeded")
	}
	wait.For(t, 10*time.Second, "goroutines to end after Close", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestWatchSendsResyncAfterReconnect(t *testing.T) {
	p := storagetest.NewProxy(t, plainAddr(t))
	s := newTestStorage(t, func(c *Config) { c.Addr = viaProxy(t, p.Addr()) })
	o := peer(t, s) // direct, not through the proxy
	ctx := testCtx(t)
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := o.Store(ctx, "missed", []byte("x")); err != nil {
		t.Fatal(err)
	}
	p.Restore()
	if got := next(t, ch); got != "" {
		t.Fatalf("first report after a reconnect = %q, want \"\" (reload everything)", got)
	}
	if err := o.Store(ctx, "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the change after the reconnect", func() bool {
		select {
		case k := <-ch:
			return k == "after"
		default:
			return false
		}
	})
}
