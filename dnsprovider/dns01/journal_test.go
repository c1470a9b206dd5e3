package dns01

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
)

// abandon stops s as if its process had died: no more lease renewals, no
// cleanup, records and journal entries left as they are.
func abandon(s *Solver) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.ops.Wait()
	s.loops.Wait()
	s.closeOnce.Do(func() {})
}

func TestSweepDeletesRecordsOfAMemberWhoseLeaseLapsed(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	cfg := w.config(t, nil)
	cfg.OwnerLease = 300 * time.Millisecond
	dead := newTestSolver(t, cfg)
	ctx := context.Background()
	for _, tok := range []string{"apex", "wildcard"} {
		if err := dead.Present(ctx, challenge("example.test", tok)); err != nil {
			t.Fatal(err)
		}
	}
	abandon(dead)
	if got := w.Zones().TXT("_acme-challenge.example.test"); len(got) != 2 {
		t.Fatalf("TXT values of the dead member: %q, want 2", got)
	}

	// The next member sweeps at start, and again when the lease lapses.
	next := newTestSolver(t, w.config(t, nil))
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the dead member's records to be deleted", func() bool {
		return len(w.challengeTXT(t, "example.test")) == 0 && len(w.journal(t)) == 0
	})
	wait.For(t, 20*time.Second, "the dead member's lease to be deleted", func() bool {
		keys, _ := w.storage.List(ctx, ownersPrefix, false)
		return len(keys) == 1 && strings.HasSuffix(keys[0], next.id)
	})
}

func TestSweepDeletesRecordsWithoutLeaseAtOnce(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	dead := newTestSolver(t, w.config(t, nil))
	ctx := context.Background()
	if err := dead.Present(ctx, challenge("example.test", "tok")); err != nil {
		t.Fatal(err)
	}
	abandon(dead)
	if err := w.storage.Delete(ctx, ownerKey(dead.id)); err != nil {
		t.Fatal(err)
	}
	// Sweep and the sweep that starting the solver begins may each do it.
	sweeper := newTestSolver(t, w.config(t, nil))
	if _, err := sweeper.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the record to be deleted", func() bool {
		return len(w.challengeTXT(t, "example.test")) == 0 && len(w.journal(t)) == 0
	})
}

func TestSweepLeavesRecordsOfLiveMembers(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	live := newTestSolver(t, w.config(t, nil))
	ctx := context.Background()
	if err := live.Present(ctx, challenge("example.test", "tok")); err != nil {
		t.Fatal(err)
	}
	other := newTestSolver(t, w.config(t, nil))
	removed, err := other.Sweep(ctx)
	if err != nil || removed != 0 {
		t.Fatalf("Sweep removed %d (%v), want 0", removed, err)
	}
	if len(w.Zones().TXT("_acme-challenge.example.test")) != 1 || len(w.journal(t)) != 1 {
		t.Fatal("the live member's record or journal entry was removed")
	}
}
