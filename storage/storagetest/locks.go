package storagetest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage"
)

// Counts for the cross-process mutual exclusion check.
const (
	mutexProcs  = 3
	mutexCycles = 100
)

// mustLock locks name within timeout or fails the test.
func mustLock(t testing.TB, s certmagic.Storage, name string, timeout time.Duration, why string) {
	t.Helper()
	if err := s.Lock(ctxFor(t, timeout), name); err != nil {
		t.Fatalf("Lock(%q) %s: want success within %v, got %v", name, why, timeout, err)
	}
}

// mustUnlock unlocks name or fails the test.
func mustUnlock(t testing.TB, s certmagic.Storage, name string, why string) {
	t.Helper()
	if err := s.Unlock(opCtx(t), name); err != nil {
		t.Fatalf("Unlock(%q) %s: %v", name, why, err)
	}
}

// mustStayLocked checks that Lock on a name another holder has does not
// succeed within d, and returns the context's error.
func mustStayLocked(t testing.TB, s certmagic.Storage, name string, d time.Duration, why string) {
	t.Helper()
	err := s.Lock(ctxFor(t, d), name)
	if err == nil {
		t.Fatalf("Lock(%q) succeeded although %s", name, why)
	}
	if !isCtxErr(err) {
		t.Errorf("Lock(%q) on a held name, ended by its context: want an error wrapping the context's error, got %v", name, err)
	}
}

func (r *run) testOddLockNames(t *testing.T) {
	ns := r.namespace("locknames")
	s := r.client(t, ns)
	names := append(oddNames(), "a/b", "a/", "/a", "")
	// One client holds every name at once: if two names shared a lock, the
	// second Lock would block (a client's own lock blocks it too, which
	// TestLockHonoursContext checks).
	for _, n := range names {
		mustLock(t, s, "lock-"+n, r.b.LockTTL+lockGrace, "of a free name while holding the other odd names")
	}
	for _, n := range names {
		mustUnlock(t, s, "lock-"+n, "of a held lock")
	}
	other := r.client(t, ns)
	for _, n := range names {
		mustLock(t, other, "lock-"+n, r.b.LockTTL/2, "after its holder unlocked it")
		mustUnlock(t, other, "lock-"+n, "of a held lock")
	}
}

func (r *run) testLockHonoursContext(t *testing.T) {
	ns := r.namespace("lockctx")
	holder, other := r.client(t, ns), r.client(t, ns)
	const name = "issue_cert_*.example.com"
	mustLock(t, holder, name, opTimeout, "of a free name")
	for _, d := range []time.Duration{time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond} {
		for _, w := range []struct {
			who string
			s   certmagic.Storage
		}{{"another client", other}, {"the holder's own client", holder}} {
			start := time.Now()
			err := w.s.Lock(ctxFor(t, d), name)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Lock by %s with a %v deadline succeeded on a held name", w.who, d)
			}
			if !isCtxErr(err) {
				t.Errorf("Lock by %s with a %v deadline: want an error wrapping the context's error, got %v", w.who, d, err)
			}
			// Not a timing assertion: only a Lock that ignores its context
			// comes back this late.
			if elapsed > d+lockGrace {
				t.Errorf("Lock by %s with a %v deadline returned only after %v", w.who, d, elapsed)
			}
		}
	}
	mustUnlock(t, holder, name, "by its holder")
	// A waiter that gave up must never acquire later: the name is free at once.
	third := r.client(t, ns)
	mustLock(t, third, name, r.b.LockTTL/2, "after its holder unlocked it and every waiter gave up")
	mustUnlock(t, third, name, "by its holder")
	mustLock(t, other, name, r.b.LockTTL/2, "after its holder unlocked it")
	mustUnlock(t, other, name, "by its holder")
}

func (r *run) testFencingTokensGrow(t *testing.T) {
	ns := r.namespace("fence")
	a, b := r.client(t, ns), r.client(t, ns)
	fa, ok := a.(storage.Fencer)
	if !ok {
		t.Skipf("%T does not implement storage.Fencer", a)
	}
	if _, err := fa.FencingToken(opCtx(t), "fenced"); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%T does not support fencing tokens here: %v", a, err)
	}
	fb := b.(storage.Fencer)
	const name = "fenced"
	var last uint64
	step := func(s certmagic.Storage, f storage.Fencer, other storage.Fencer, who string) {
		t.Helper()
		mustLock(t, s, name, opTimeout, "of a free name")
		tok, err := f.FencingToken(opCtx(t), name)
		if err != nil {
			t.Fatalf("FencingToken by %s, the holder: %v", who, err)
		}
		if tok <= last {
			t.Errorf("FencingToken by %s = %d: want more than the previous holder's %d", who, tok, last)
		}
		last = tok
		if _, err := other.FencingToken(opCtx(t), name); !errors.Is(err, storage.ErrLockLost) {
			t.Errorf("FencingToken by a client not holding the lock: want an error wrapping storage.ErrLockLost, got %v", err)
		}
		mustUnlock(t, s, name, "by its holder")
		if _, err := f.FencingToken(opCtx(t), name); !errors.Is(err, storage.ErrLockLost) {
			t.Errorf("FencingToken after Unlock: want an error wrapping storage.ErrLockLost, got %v", err)
		}
	}
	step(a, fa, fb, "client a")
	step(b, fb, fa, "client b")
	step(a, fa, fb, "client a again")
}

func (r *run) testMutualExclusion(t *testing.T) {
	ns := r.namespace("mutex")
	spec := childSpec{Role: roleMutex, Namespace: ns, Name: "issue_cert_example.com", Cycles: mutexCycles, Dir: t.TempDir()}
	var children []*child
	for range mutexProcs {
		children = append(children, r.startChild(t, spec))
	}
	for _, c := range children {
		if got := c.next(t, opTimeout); got != "ready" {
			t.Fatalf("child process said %q, want ready", got)
		}
	}
	for _, c := range children {
		c.send(t, "go")
	}
	for _, c := range children {
		if got := c.next(t, 3*opTimeout); got != "done" {
			t.Fatalf("child process said %q, want done", got)
		}
		c.wait(t, opTimeout)
	}
	if n, want := readCounter(t, filepath.Join(spec.Dir, "count")), uint64(mutexProcs*mutexCycles); n != want {
		t.Errorf("critical section counter = %d after %d processes × %d cycles, want %d: updates were lost to overlapping holders", n, mutexProcs, mutexCycles, want)
	}
	t.Logf("the lock changed hands between processes %d times in %d cycles", readCounter(t, filepath.Join(spec.Dir, "handoffs")), mutexProcs*mutexCycles)
}

func (r *run) testKeepalive(t *testing.T) {
	t.Parallel()
	ns := r.namespace("keepalive")
	holder, waiter := r.client(t, ns), r.client(t, ns)
	const name = "long-held"
	mustLock(t, holder, name, opTimeout, "of a free name")
	hold := 10 * r.b.LockTTL

	var wg sync.WaitGroup
	renewErrs := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	if rn, ok := holder.(certmagic.LockLeaseRenewer); ok {
		// A renewal asking for less than the lease has left must not shorten
		// it; the waiter below keeps trying meanwhile.
		if err := rn.RenewLockLease(opCtx(t), "not-held", r.b.LockTTL); err == nil {
			t.Errorf("RenewLockLease of a lock the client does not hold succeeded")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(r.b.LockTTL / 4)
			defer tick.Stop()
			for {
				if err := rn.RenewLockLease(ctx, name, time.Millisecond); err != nil && ctx.Err() == nil {
					renewErrs <- err
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	err := waiter.Lock(ctxFor(t, hold), name)
	cancel()
	wg.Wait()
	if err == nil {
		t.Fatalf("Lock by another client succeeded while the holder kept its lock (within %v = 10 × LockTTL): the lock expired under a live holder", hold)
	}
	if !isCtxErr(err) {
		t.Errorf("Lock on a held name ended by its context: want an error wrapping the context's error, got %v", err)
	}
	select {
	case err := <-renewErrs:
		t.Errorf("RenewLockLease(%q, 1ms) by the holder: %v", name, err)
	default:
	}
	mustUnlock(t, holder, name, "after holding it for 10 × LockTTL")
	mustLock(t, waiter, name, r.b.LockTTL/2, "after its holder unlocked it")
	mustUnlock(t, waiter, name, "by its holder")
}

func (r *run) testKilledHolder(t *testing.T) {
	t.Parallel()
	ns := r.namespace("killed")
	const name = "killed-holder"
	c := r.startChild(t, childSpec{Role: roleHold, Namespace: ns, Name: name})
	token := lockedToken(t, c.next(t, opTimeout))
	// Several waiters find the dead holder's lock expired at about the same
	// moment: exactly one may take it over, then the others in turn.
	const waiters = 4
	const holdFor = 100 * time.Millisecond
	clients := make([]certmagic.Storage, waiters)
	for i := range clients {
		clients[i] = r.client(t, ns)
	}
	killed := time.Now()
	c.kill(t)

	var (
		inside atomic.Int32
		mu     sync.Mutex
		first  time.Time
		last   = token
		wg     sync.WaitGroup
	)
	errs := make(chan error, 2*waiters)
	deadline := killed.Add(r.b.LockTTL + lockGrace + waiters*(holdFor+lockGrace))
	for i, s := range clients {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			if err := s.Lock(ctx, name); err != nil {
				errs <- fmt.Errorf("waiter %d: Lock after the holder was killed: %w", i, err)
				return
			}
			if n := inside.Add(1); n > 1 {
				errs <- fmt.Errorf("waiter %d took over the dead holder's lock while %d other waiter(s) held it", i, n-1)
			}
			mu.Lock()
			if first.IsZero() {
				first = time.Now()
			}
			if f, ok := s.(storage.Fencer); ok {
				tok, err := f.FencingToken(ctx, name)
				if errors.Is(err, errors.ErrUnsupported) {
					tok = last + 1
				} else if err != nil {
					errs <- fmt.Errorf("waiter %d: FencingToken of a held lock: %w", i, err)
				} else if tok <= last {
					errs <- fmt.Errorf("waiter %d: fencing token %d not greater than the previous holder's %d", i, tok, last)
				}
				last = tok
			}
			mu.Unlock()
			time.Sleep(holdFor) // the critical section's work: a window for a second winner
			inside.Add(-1)
			if err := s.Unlock(context.Background(), name); err != nil {
				errs <- fmt.Errorf("waiter %d: Unlock of a held lock: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !first.IsZero() && first.Sub(killed) > r.b.LockTTL+lockGrace {
		t.Errorf("the lock of a killed holder was first taken over %v after the kill, want within LockTTL+%v = %v",
			first.Sub(killed).Round(time.Millisecond), lockGrace, r.b.LockTTL+lockGrace)
	}
}

func (r *run) testPausedHolder(t *testing.T) {
	t.Parallel()
	ns := r.namespace("paused")
	const name = "paused-holder"
	c := r.startChild(t, childSpec{Role: roleHold, Namespace: ns, Name: name})
	token := lockedToken(t, c.next(t, opTimeout))
	if err := pause(c.cmd.Process); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = resume(c.cmd.Process)
		}
	}()
	s := r.client(t, ns)
	mustLock(t, s, name, r.b.LockTTL+lockGrace, "while its holder was paused past the lock TTL")
	checkTokenAfter(t, s, name, token)

	c.send(t, "unlock")
	if err := resume(c.cmd.Process); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	resumed = true
	got := c.next(t, opTimeout)
	renew, unlock, _ := strings.Cut(got, " ")
	if renew != "renew=none" && renew != "renew=lost" {
		t.Errorf("RenewLockLease by the old holder after it was resumed: want an error wrapping storage.ErrLockLost, got %s", strings.TrimPrefix(renew, "renew="))
	}
	if unlock != "unlock=lost" {
		t.Errorf("Unlock by the old holder after it was resumed: want an error wrapping storage.ErrLockLost, got %s", strings.TrimPrefix(unlock, "unlock="))
	}
	c.wait(t, opTimeout)

	other := r.client(t, ns)
	mustStayLocked(t, other, name, r.b.LockTTL/2, "the new holder still holds it (the old holder's Unlock freed someone else's lock)")
	if err := s.Unlock(opCtx(t), name); err != nil {
		t.Fatalf("Unlock by the new holder after the old holder resumed and unlocked: %v", err)
	}
	mustLock(t, other, name, r.b.LockTTL/2, "after its holder unlocked it")
	mustUnlock(t, other, name, "by its holder")
}

// lockedToken parses a roleHold child's "locked <token>" message; 0 means
// the storage has no fencing tokens.
func lockedToken(t testing.TB, msg string) uint64 {
	t.Helper()
	tok, ok := strings.CutPrefix(msg, "locked ")
	if !ok {
		t.Fatalf("child process said %q, want locked", msg)
	}
	if tok == "-" {
		return 0
	}
	n, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		t.Fatalf("child process said %q: %v", msg, err)
	}
	return n
}

// checkTokenAfter checks that s's fencing token for name, if it has one,
// exceeds the previous holder's.
func checkTokenAfter(t testing.TB, s certmagic.Storage, name string, prev uint64) {
	t.Helper()
	f, ok := s.(storage.Fencer)
	if !ok {
		return
	}
	tok, err := f.FencingToken(opCtx(t), name)
	if errors.Is(err, errors.ErrUnsupported) {
		return
	}
	if err != nil {
		t.Fatalf("FencingToken by the holder: %v", err)
	}
	if tok <= prev {
		t.Errorf("FencingToken of the new holder = %d: want more than the previous holder's %d", tok, prev)
	}
}
