package redis

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage/storagetest"
)

func TestOutageIsNeverNotExist(t *testing.T) {
	p := storagetest.NewProxy(t, plainAddr(t))
	s := newTestStorage(t, func(c *Config) { c.Addr = viaProxy(t, p.Addr()); c.Timeout = time.Second })
	ctx := testCtx(t)
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	op := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	for _, key := range []string{"k", "missing"} {
		if _, err := s.Load(op(), key); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) during an outage: %v, want an error that is not fs.ErrNotExist", key, err)
		}
		if _, err := s.Stat(op(), key); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) during an outage: %v", key, err)
		}
		if !s.Exists(op(), key) {
			t.Errorf("Exists(%q) during an outage = false", key)
		}
	}
	if _, err := s.List(op(), "", true); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List during an outage: %v", err)
	}
	if err := s.Store(op(), "k", []byte("w")); err == nil {
		t.Error("Store during an outage succeeded")
	}
	if err := s.Lock(op(), "n"); err == nil {
		t.Error("Lock during an outage succeeded")
	}
	p.Restore()
	if v, err := s.Load(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Load after the outage = %q, %v", v, err)
	}
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatalf("Lock after the outage: %v", err)
	}
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}

func TestLockSurvivesShortOutage(t *testing.T) {
	p := storagetest.NewProxy(t, plainAddr(t))
	s := newTestStorage(t, func(c *Config) { c.Addr = viaProxy(t, p.Addr()); c.LockTTL = 3 * time.Second })
	ctx := testCtx(t)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	// Cut for less than the TTL: the keepalive fails, then catches up.
	p.Cut()
	raw := rawClient(t)
	wait.For(t, 5*time.Second, "a keepalive to fail", func() bool {
		return raw.PTTL(ctx, s.lockKey("n")).Val() < 2*time.Second
	})
	p.Restore()
	wait.For(t, 5*time.Second, "the keepalive to refresh the lock again", func() bool {
		return raw.PTTL(ctx, s.lockKey("n")).Val() > 2*time.Second
	})
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatalf("Unlock after a short outage: %v", err)
	}
}
