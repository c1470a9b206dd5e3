package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

// expireLock ends the lease of name behind its holder's back, as if the
// holder had stalled past the TTL.
func expireLock(t *testing.T, s *Storage, name string) {
	t.Helper()
	tag, err := adminConn(t).Exec(testCtx(t), "UPDATE "+s.sql.locks+" SET expires_at = now() - interval '1 second' WHERE name = $1", name)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("expiring lock %q: %v (%d rows)", name, err, tag.RowsAffected())
	}
}

// lockRows counts the rows of lock name, free or held.
func lockRows(t *testing.T, s *Storage, name string) int {
	t.Helper()
	var n int
	if err := adminConn(t).QueryRow(testCtx(t), "SELECT count(*) FROM "+s.sql.locks+" WHERE name = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// slowKeepalive makes a client whose keepalive will not run during a test,
// so that the test can expire its lease.
func slowKeepalive(c *Config) { c.LockTTL = 10 * time.Minute }

func TestOnlyOneOfManyConcurrentAcquirersWins(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "race")
	const clients, rounds = 8, 25
	var ss []*Storage
	for range clients {
		ss = append(ss, newTestStorage(t, cs, ns, nil))
	}
	for round := range rounds {
		name := fmt.Sprintf("race-%d", round)
		start := make(chan struct{})
		won := make(chan *Storage, clients)
		var wg sync.WaitGroup
		for _, s := range ss {
			wg.Go(func() {
				<-start
				ok, err := s.TryLock(testCtx(t), name)
				if err != nil {
					t.Errorf("TryLock: %v", err)
				}
				if ok {
					won <- s
				}
			})
		}
		close(start)
		wg.Wait()
		close(won)
		var winners []*Storage
		for s := range won {
			winners = append(winners, s)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d clients acquired the free lock at once, want exactly 1", round, len(winners))
		}
		if err := winners[0].Unlock(testCtx(t), name); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnlockAfterTakeoverReportsLockLostAndFreesNothing(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "takeover")
	stalled := newTestStorage(t, cs, ns, slowKeepalive)
	taker := newTestStorage(t, cs, ns, nil)
	const name = "issue_cert_*.example.com"
	if err := stalled.Lock(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	expireLock(t, stalled, name)
	if err := taker.Lock(testCtx(t), name); err != nil {
		t.Fatalf("Lock of an expired lock: %v", err)
	}
	if err := stalled.RenewLockLease(testCtx(t), name, time.Hour); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("RenewLockLease by the old holder: %v, want storage.ErrLockLost", err)
	}
	if _, err := stalled.FencingToken(testCtx(t), name); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("FencingToken by the old holder: %v, want storage.ErrLockLost", err)
	}
	if err := stalled.Unlock(testCtx(t), name); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("Unlock by the old holder: %v, want storage.ErrLockLost", err)
	}
	if _, err := taker.FencingToken(testCtx(t), name); err != nil {
		t.Errorf("the new holder lost its lock after the old holder's Unlock: %v", err)
	}
	if err := taker.Unlock(testCtx(t), name); err != nil {
		t.Errorf("Unlock by the new holder: %v", err)
	}
}

// Two acquisitions of one name by one client (the first lost, the second
// live) are told apart: the first Unlock releases the lost one and reports
// it, never the live one.
func TestLostLeaseOfAClientDoesNotFreeItsNewLease(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "relock")
	s := newTestStorage(t, cs, ns, slowKeepalive)
	other := newTestStorage(t, cs, ns, nil)
	const name = "relocked"
	if err := s.Lock(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	expireLock(t, s, name)
	if err := s.Lock(testCtx(t), name); err != nil {
		t.Fatalf("Lock of its own expired lock: %v", err)
	}
	if err := s.Unlock(testCtx(t), name); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("first Unlock: %v, want storage.ErrLockLost for the expired lease", err)
	}
	if ok, err := other.TryLock(testCtx(t), name); ok || err != nil {
		t.Fatalf("TryLock by another client while the new lease is held = %v, %v; want false", ok, err)
	}
	if err := s.Unlock(testCtx(t), name); err != nil {
		t.Errorf("second Unlock, of the live lease: %v", err)
	}
	if err := s.Unlock(testCtx(t), name); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("Unlock of a lock not held: %v, want storage.ErrLockLost", err)
	}
}

func TestRenewLockLeaseNeverShortens(t *testing.T) {
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "renew"), nil)
	const name = "renewed"
	if err := s.RenewLockLease(testCtx(t), name, time.Hour); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("RenewLockLease of a lock not held: %v, want storage.ErrLockLost", err)
	}
	if err := s.Lock(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewLockLease(testCtx(t), name, 0); err == nil {
		t.Errorf("RenewLockLease with a zero duration succeeded")
	}
	left := func() time.Duration {
		t.Helper()
		var d time.Duration
		err := adminConn(t).QueryRow(testCtx(t), "SELECT expires_at - now() FROM "+s.sql.locks+" WHERE name = $1", name).Scan(&d)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if err := s.RenewLockLease(testCtx(t), name, time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := left(); d < 50*time.Minute {
		t.Fatalf("lease left after RenewLockLease(1h) = %v", d)
	}
	if err := s.RenewLockLease(testCtx(t), name, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := left(); d < 50*time.Minute {
		t.Errorf("lease left after RenewLockLease(1ms) = %v: a renewal shortened the lease", d)
	}
	if err := s.Unlock(testCtx(t), name); err != nil {
		t.Fatal(err)
	}
}

// An acquisition whose context ends just as it succeeds must not leave the
// lock held by nobody until it expires.
func TestLockAcquiredAsItsContextEndsIsReleased(t *testing.T) {
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "ctxrace"), slowKeepalive)
	const name = "raced"
	owner := newOwner()
	start := time.Now()
	if _, err := s.takeRow(testCtx(t), name, owner, &start); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the context ends just as the row was taken
	if ok, err := s.settle(ctx, name, owner, start, nil); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("settling an acquisition whose context ended: %v, %v; want false, context.Canceled", ok, err)
	}
	// Expiry would take LockTTL (10 minutes); only a release removes the row.
	if !wait.Until(30*time.Second, func() bool { return lockRows(t, s, name) == 0 }) {
		t.Fatalf("the lock acquired as the context ended was not released")
	}
}

func TestCloseReleasesLocksAndStopsEverything(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "close")
	other := newTestStorage(t, cs, ns, nil) // also drops the schema at the end
	before := runtime.NumGoroutine()

	s, err := New(testCtx(t), Config{ConnString: cs, Schema: schemaFor(ns), LockTTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(testCtx(t), "held"); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for range ch { // returns once the channel is closed
	}
	if ok, err := other.TryLock(testCtx(t), "held"); !ok || err != nil {
		t.Errorf("TryLock after its holder closed = %v, %v; want true (Close releases locks)", ok, err)
	} else if err := other.Unlock(testCtx(t), "held"); err != nil { // stops other's keepalive
		t.Fatal(err)
	}
	if err := s.Lock(testCtx(t), "after-close"); err == nil {
		t.Errorf("Lock after Close succeeded")
	}
	if !wait.Until(10*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before New:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
	}
}
