package kvbackend

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/leakcheck"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

func TestKeepaliveRenewsUntilReleasedAndMarksLoss(t *testing.T) {
	before := leakcheck.Take()
	g := NewGroup()
	var renewals atomic.Int32
	held := atomic.Bool{}
	held.Store(true)
	locks := NewLocks(g, time.Millisecond, func(ctx context.Context, h *Held[string]) (bool, error) {
		renewals.Add(1)
		return held.Load(), nil
	}, slog.New(slog.DiscardHandler))
	a := locks.Hold("a", "data")
	if a == nil || locks.Get("a") != a || a.Data != "data" {
		t.Fatal("Hold did not record the lock")
	}
	wait.For(t, 5*time.Second, "renewals", func() bool { return renewals.Load() > 3 })
	held.Store(false)
	wait.For(t, 5*time.Second, "the lock to be marked lost", a.Lost)
	if locks.Release("a") != a || locks.Get("a") != nil || locks.Release("a") != nil {
		t.Fatal("Release did not forget the lock")
	}
	locks.Hold("b", "")
	if !g.Close(nil) || g.Close(nil) {
		t.Fatal("Close did not report the first close only")
	}
	if locks.Hold("c", "") != nil || g.Go(func(context.Context) {}) {
		t.Fatal("a closed group started a goroutine")
	}
	before.Check(t, 5*time.Second)
}

func TestAttemptTimeoutIsRetriedCallerDeadlineIsNot(t *testing.T) {
	r := Requests{Retry: storage.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond}, Timeout: 10 * time.Millisecond, Server: "test"}
	var calls int
	err := r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		<-ctx.Done()
		return ctx.Err()
	})
	if calls != 3 || err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%d calls, %v; want 3 calls and a transient error", calls, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	calls = 0
	err = Requests{Retry: storage.RetryPolicy{MaxAttempts: 3}, Timeout: time.Hour, Server: "test"}.Do(ctx, func(ctx context.Context) error {
		calls++
		<-ctx.Done()
		return ctx.Err()
	})
	if calls != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%d calls, %v; want one call ended by the caller's deadline", calls, err)
	}
}

func TestCleanKey(t *testing.T) {
	if k, root, err := CleanKey("x", "/a/b/"); k != "a/b" || root || err != nil {
		t.Fatalf("CleanKey = %q %v %v", k, root, err)
	}
	if _, err := FileKey("x", "/"); err == nil {
		t.Fatal("FileKey accepted the root")
	}
	if _, _, err := CleanKey("x", "a//b"); err == nil {
		t.Fatal("CleanKey accepted an empty component")
	}
}
