package file

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/storage"
)

func newTest(t testing.TB, dir string, ttl time.Duration) *Storage {
	t.Helper()
	s, err := New(context.Background(), Config{Dir: dir, LockTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stall makes s behave as if its process froze while holding name: its
// keepalive stops, and its lease is made to have run out.
func stall(t testing.TB, s *Storage, name string) {
	t.Helper()
	s.mu.Lock()
	l := s.held[name]
	s.mu.Unlock()
	if l == nil {
		t.Fatalf("%s does not hold %q", s, name)
	}
	close(l.stop)
	<-l.done
	past := time.Now().Add(-time.Second)
	if err := os.Chtimes(genPath(l.dir, l.gen), past, past); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredLockIsTakenOverByExactlyOneWaiter(t *testing.T) {
	dir := t.TempDir()
	const name, waiters, rounds = "issue_cert_example.com", 12, 30
	holder := newTest(t, dir, time.Hour)
	clients := make([]*Storage, waiters)
	for i := range clients {
		clients[i] = newTest(t, dir, time.Hour)
	}
	ctx := context.Background()
	for round := range rounds {
		if err := holder.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
		stall(t, holder, name)
		var wg sync.WaitGroup
		start := make(chan struct{})
		won := make(chan *Storage, waiters)
		for _, c := range clients {
			wg.Go(func() {
				<-start
				ok, err := c.TryLock(ctx, name)
				if err != nil {
					t.Error(err)
				}
				if ok {
					won <- c
				}
			})
		}
		close(start)
		wg.Wait()
		close(won)
		var winners []*Storage
		for c := range won {
			winners = append(winners, c)
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d waiters took over the expired lock, want exactly 1", round, len(winners))
		}
		if err := holder.Unlock(ctx, name); !errors.Is(err, storage.ErrLockLost) {
			t.Fatalf("round %d: Unlock by the stalled holder: want ErrLockLost, got %v", round, err)
		}
		if err := winners[0].Unlock(ctx, name); err != nil {
			t.Fatalf("round %d: Unlock by the winner: %v", round, err)
		}
	}
}

func TestStalledHolderCannotFreeItsSuccessorsLock(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a, b, c := newTest(t, dir, time.Hour), newTest(t, dir, time.Hour), newTest(t, dir, time.Hour)
	const name = "lock"
	if err := a.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	tokA, _ := a.FencingToken(ctx, name)
	stall(t, a, name)
	if err := b.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	tokB, err := b.FencingToken(ctx, name)
	if err != nil || tokB <= tokA {
		t.Errorf("fencing tokens: stalled holder %d, successor %d, %v", tokA, tokB, err)
	}
	if _, err := a.FencingToken(ctx, name); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("FencingToken by the stalled holder: want ErrLockLost, got %v", err)
	}
	if err := a.RenewLockLease(ctx, name, time.Hour); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("RenewLockLease by the stalled holder: want ErrLockLost, got %v", err)
	}
	if err := a.Unlock(ctx, name); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("Unlock by the stalled holder: want ErrLockLost, got %v", err)
	}
	if ok, err := c.TryLock(ctx, name); ok || err != nil {
		t.Fatalf("TryLock after the stalled holder's Unlock = %v, %v: the successor's lock was freed", ok, err)
	}
	if err := b.Unlock(ctx, name); err != nil {
		t.Errorf("Unlock by the successor: %v", err)
	}
	if err := a.Unlock(ctx, name); err == nil {
		t.Error("a second Unlock by the stalled holder succeeded")
	}
}

func TestSlowWaiterCannotReviveAnOldGeneration(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := newTest(t, dir, time.Hour)
	const name = "lock"
	for range 5 {
		if err := s.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := s.Unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	ldir := s.lockDirFor(name)
	gens, err := generations(ldir)
	if err != nil || len(gens) != 2 || gens[1] != 6 {
		t.Fatalf("generations after 6 acquisitions = %v, %v; want [5 6]", gens, err)
	}
	// A waiter that read generation 1 long ago now creates generation 2,
	// which cleanup removed: it must not count as holding the lock.
	l, err := s.create(name, ldir, 2)
	if l != nil || err != nil {
		t.Fatalf("create of a pruned generation = %v, %v; want nil, nil", l, err)
	}
	if _, err := os.Stat(genPath(ldir, 2)); !os.IsNotExist(err) {
		t.Errorf("the revived generation file was left behind: %v", err)
	}
	if tok, err := s.FencingToken(ctx, name); err != nil || tok != 6 {
		t.Errorf("FencingToken of the holder = %d, %v; want 6", tok, err)
	}
}

func TestRenewLockLeaseNeverShortens(t *testing.T) {
	s := newTest(t, t.TempDir(), time.Second)
	ctx := context.Background()
	if err := s.Lock(ctx, "lease"); err != nil {
		t.Fatal(err)
	}
	path := genPath(s.lockDirFor("lease"), 1)
	leaseEnd := func() time.Time {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	if err := s.RenewLockLease(ctx, "lease", time.Hour); err != nil {
		t.Fatal(err)
	}
	long := leaseEnd()
	if time.Until(long) < 59*time.Minute {
		t.Fatalf("lease ends in %v after RenewLockLease(1h)", time.Until(long))
	}
	if err := s.RenewLockLease(ctx, "lease", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := s.renew(s.held["lease"], 0); err != nil { // what the keepalive does
		t.Fatal(err)
	}
	if got := leaseEnd(); got.Before(long) {
		t.Errorf("lease shortened from %v to %v", long, got)
	}
	if err := s.RenewLockLease(ctx, "not-held", time.Hour); !errors.Is(err, storage.ErrLockLost) {
		t.Errorf("RenewLockLease of a lock not held: want ErrLockLost, got %v", err)
	}
	if err := s.Unlock(ctx, "lease"); err != nil {
		t.Fatal(err)
	}
	if !leaseEnd().Before(time.Now()) {
		t.Error("Unlock left the lease running")
	}
}

func TestCloseReleasesLocksAndEndsWatches(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a, err := New(context.Background(), Config{Dir: dir, LockTTL: time.Hour, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	ch, err := a.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, open := <-ch; open {
		t.Error("Watch channel still open after Close")
	}
	b := newTest(t, dir, time.Hour)
	if ok, err := b.TryLock(ctx, "held"); !ok || err != nil {
		t.Errorf("TryLock after the holder closed = %v, %v; want true", ok, err)
	}
	if err := a.Lock(ctx, "other"); !errors.Is(err, ErrClosed) {
		t.Errorf("Lock after Close: want ErrClosed, got %v", err)
	}
	if _, err := a.Watch(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close: want ErrClosed, got %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
