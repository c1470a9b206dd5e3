package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

// peer returns a second client of s's storage (same prefix and settings).
func peer(t *testing.T, s *Storage) *Storage {
	t.Helper()
	return openTestStorage(t, Config{Addr: testAddr(t), Prefix: s.prefix, LockTTL: s.lockTTL})
}

func TestLockExcludesOtherClients(t *testing.T) {
	s := newTestStorage(t)
	clients := []*Storage{s, peer(t, s), peer(t, s)}
	var inside, entries atomic.Int32
	var wg sync.WaitGroup
	for _, c := range clients {
		for range 2 { // two goroutines per client, as certmagic does
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := testCtx(t)
				for range 10 {
					if err := c.Lock(ctx, "issue_cert_*.example.com"); err != nil {
						t.Errorf("Lock: %v", err)
						return
					}
					if inside.Add(1) != 1 {
						t.Error("two holders inside the lock at once")
					}
					entries.Add(1)
					inside.Add(-1)
					if err := c.Unlock(ctx, "issue_cert_*.example.com"); err != nil {
						t.Errorf("Unlock: %v", err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if got := entries.Load(); got != 60 {
		t.Fatalf("%d entries, want 60", got)
	}
}

func TestTryLockDoesNotWait(t *testing.T) {
	s := newTestStorage(t)
	o := peer(t, s)
	ctx := testCtx(t)
	if ok, err := s.TryLock(ctx, "n"); !ok || err != nil {
		t.Fatalf("TryLock of a free lock = %t, %v", ok, err)
	}
	if ok, err := o.TryLock(ctx, "n"); ok || err != nil {
		t.Fatalf("TryLock of a held lock = %t, %v; want false, nil", ok, err)
	}
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if ok, err := o.TryLock(ctx, "n"); !ok || err != nil {
		t.Fatalf("TryLock after Unlock = %t, %v", ok, err)
	}
	if err := o.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}

func TestLockHonoursContext(t *testing.T) {
	s := newTestStorage(t)
	o := peer(t, s)
	if err := s.Lock(testCtx(t), "n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := o.Lock(ctx, "n")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock with a short context: %v, want DeadlineExceeded", err)
	}
	// The holder keeps its lock.
	if _, err := s.FencingToken(testCtx(t), "n"); err != nil {
		t.Fatalf("holder lost its lock to a cancelled waiter: %v", err)
	}
}

func TestLockWithEndedContextLeavesLockFree(t *testing.T) {
	s := newTestStorage(t)
	o := peer(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Lock(ctx, "n"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled context: %v", err)
	}
	wait.For(t, 5*time.Second, "the lock to be free", func() bool {
		ok, err := o.TryLock(testCtx(t), "n")
		return ok && err == nil
	})
}

func TestHeldLockIsKeptAlive(t *testing.T) {
	s := newTestStorage(t, func(c *Config) { c.LockTTL = time.Second })
	o := peer(t, s)
	ctx := testCtx(t)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	key := s.lockKey("n")
	raw := rawClient(t)
	probe := time.NewTicker(100 * time.Millisecond)
	defer probe.Stop()
	for end := time.Now().Add(4 * s.lockTTL); time.Now().Before(end); <-probe.C {
		if ok, err := o.TryLock(ctx, "n"); ok || err != nil {
			t.Fatalf("TryLock of a kept-alive lock = %t, %v", ok, err)
		}
		pttl, err := raw.PTTL(ctx, key).Result()
		if err != nil || pttl <= 0 {
			t.Fatalf("lock key TTL = %v, %v", pttl, err)
		}
	}
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatalf("Unlock after a long hold: %v", err)
	}
}

func TestStalledHolderLearnsItLostTheLock(t *testing.T) {
	s := newTestStorage(t)
	o := peer(t, s)
	ctx := testCtx(t)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	first, err := s.FencingToken(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a holder stalled past its TTL: its lock expires under it.
	if err := rawClient(t).Del(ctx, s.lockKey("n")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := o.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	second, err := o.FencingToken(ctx, "n")
	if err != nil {
		t.Fatal(err)
	}
	if second <= first {
		t.Fatalf("fencing token %d after %d: want it to grow", second, first)
	}
	if _, err := s.FencingToken(ctx, "n"); !errors.Is(err, storage.ErrLockLost) {
		t.Fatalf("FencingToken of the stalled holder: %v, want ErrLockLost", err)
	}
	if err := s.RenewLockLease(ctx, "n", time.Minute); !errors.Is(err, storage.ErrLockLost) {
		t.Fatalf("RenewLockLease of the stalled holder: %v, want ErrLockLost", err)
	}
	if err := s.Unlock(ctx, "n"); !errors.Is(err, storage.ErrLockLost) {
		t.Fatalf("Unlock of the stalled holder: %v, want ErrLockLost", err)
	}
	if got, err := o.FencingToken(ctx, "n"); err != nil || got != second {
		t.Fatalf("new holder after the old one's Unlock: %d, %v; want it to keep %d", got, err, second)
	}
	if err := o.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}

func TestKeepaliveNoticesLostLock(t *testing.T) {
	s := newTestStorage(t, func(c *Config) { c.LockTTL = time.Second })
	o := peer(t, s)
	ctx := testCtx(t)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := rawClient(t).Del(ctx, s.lockKey("n")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := o.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the keepalive to notice", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.locks["n"].lost.Load()
	})
	if err := o.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	// Gone and free now, but the first holder still lost it meanwhile.
	if err := s.Unlock(ctx, "n"); !errors.Is(err, storage.ErrLockLost) {
		t.Fatalf("Unlock after the lock changed hands: %v, want ErrLockLost", err)
	}
}

func TestRenewLockLeaseNeverShortens(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t)
	if err := s.RenewLockLease(ctx, "n", time.Hour); err != nil {
		t.Fatal(err)
	}
	if pttl := raw.PTTL(ctx, s.lockKey("n")).Val(); pttl < 59*time.Minute {
		t.Fatalf("TTL after renewing for an hour: %v", pttl)
	}
	if err := s.RenewLockLease(ctx, "n", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if pttl := raw.PTTL(ctx, s.lockKey("n")).Val(); pttl < 59*time.Minute {
		t.Fatalf("TTL after renewing for 1ms: %v, want the hour kept", pttl)
	}
	if err := s.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
}

func TestUnlockOfUnheldLockIsLockLost(t *testing.T) {
	s := newTestStorage(t)
	if err := s.Unlock(testCtx(t), "never"); !errors.Is(err, storage.ErrLockLost) {
		t.Fatalf("Unlock of a lock never taken: %v", err)
	}
}

func TestOddLockNamesNeverCollide(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	names := []string{"issue_cert_*.example.com", "issue_cert__.example.com", "a", "a:b", "a/b", "ab", "ü", "[x]"}
	for _, n := range names {
		if ok, err := s.TryLock(ctx, n); !ok || err != nil {
			t.Fatalf("TryLock(%q) = %t, %v: it collided with another name", n, ok, err)
		}
	}
	for _, n := range names {
		if err := s.Unlock(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReleaseRetryAfterLostReplySucceeds(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	if err := s.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	l := s.locks["n"]
	keys := []string{l.key, s.releaseKey(tokenOf(l.value))}
	for i := range 2 { // the second run is a retry whose first reply was lost
		n, err := releaseScript.Run(ctx, s.client, keys, l.value, releaseMarkerTTL.Milliseconds()).Int64()
		if err != nil || n != 1 {
			t.Fatalf("release attempt %d = %d, %v; want 1", i+1, n, err)
		}
	}
}

func TestAcquireRetryAfterLostReplyKeepsFence(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	keys := []string{s.lockKey("n"), s.fenceKey()}
	first, err := acquireScript.Run(ctx, s.client, keys, "tok", 60000, 60000).Text()
	if err != nil {
		t.Fatal(err)
	}
	again, err := acquireScript.Run(ctx, s.client, keys, "tok", 60000, 60000).Text()
	if err != nil || again != first {
		t.Fatalf("repeated acquire = %q, %v; want the first value %q", again, err, first)
	}
	other, err := acquireScript.Run(ctx, s.client, keys, "tok2", 60000, 60000).Int64()
	if err != nil || other <= 0 {
		t.Fatalf("acquire by another token = %d, %v; want the remaining ms", other, err)
	}
}

func TestLockAfterCloseFails(t *testing.T) {
	s, err := New(testCtx(t), Config{Addr: testAddr(t), Prefix: randomPrefix(t), LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(testCtx(t), "n"); err == nil {
		t.Fatal("Lock after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestFencingTokensGrowAcrossLossOfCounter(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	var last uint64
	for i := range 4 {
		if err := s.Lock(ctx, "n"); err != nil {
			t.Fatal(err)
		}
		tok, err := s.FencingToken(ctx, "n")
		if err != nil {
			t.Fatal(err)
		}
		if tok <= last {
			t.Fatalf("acquisition %d: fencing token %d after %d", i, tok, last)
		}
		last = tok
		if err := s.Unlock(ctx, "n"); err != nil {
			t.Fatal(err)
		}
		if i == 1 { // as after a Redis restart without persistence
			if err := rawClient(t).Del(ctx, s.fenceKey()).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ttl := rawClient(t).PTTL(ctx, s.fenceKey()).Val(); ttl <= 0 {
		t.Fatalf("fence counter TTL = %v, want it to expire when unused", ttl)
	}
}
