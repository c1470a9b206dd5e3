package redis

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

func TestHeldLocksListsHeldLocksWithOwnerAndLeavesOutReleasedAndExpired(t *testing.T) {
	s := newTestStorage(t)
	var _ storage.LockLister = s
	ctx := testCtx(t)
	for _, name := range []string{"b-lock", "a*lock"} { // a glob character in a name is matched literally
		if err := s.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	held, err := s.HeldLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || held[0].Name != "a*lock" || held[1].Name != "b-lock" {
		t.Fatalf("HeldLocks = %+v, want a*lock and b-lock in that order", held)
	}
	for _, h := range held {
		l, err := s.held("test", h.Name)
		if err != nil {
			t.Fatal(err)
		}
		if want := tokenOf(l.value); h.Owner != want || h.Token != l.fence {
			t.Errorf("lock %q: owner %q token %d, want the holder's token %q and fence %d", h.Name, h.Owner, h.Token, want, l.fence)
		}
		if !h.Expires.After(time.Now()) {
			t.Errorf("lock %q: expires %v, want a running lease", h.Name, h.Expires)
		}
	}

	if err := s.Unlock(ctx, "a*lock"); err != nil {
		t.Fatal(err)
	}
	// Expire b-lock behind its holder's back, as if the holder had stalled.
	if err := rawClient(t).PExpire(ctx, s.lockKey("b-lock"), time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "released and expired locks to leave the list", func() bool {
		held, err := s.HeldLocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(held) == 0
	})
}
