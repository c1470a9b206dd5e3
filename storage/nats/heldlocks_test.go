package nats

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

func TestHeldLocksListsHeldLocksWithOwnerAndLeavesOutReleasedAndLapsed(t *testing.T) {
	s := newTestStorage(t)
	var _ storage.LockLister = s
	ctx := testCtx(t)
	for _, name := range []string{"b-lock", "a/lock"} { // a name that needs escaping
		if err := s.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// A lease entry whose holder died: its TTL of 1ms runs out at once.
	if _, err := s.kv.Put(ctx, lockSubject("dead-lock"), []byte("0123abcd 1")); err != nil {
		t.Fatal(err)
	}
	var held []storage.HeldLock
	wait.For(t, 10*time.Second, "the lapsed lease to leave the list", func() bool {
		var err error
		held, err = s.HeldLocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(held) == 2
	})
	if held[0].Name != "a/lock" || held[1].Name != "b-lock" {
		t.Fatalf("HeldLocks = %+v, want a/lock and b-lock in that order", held)
	}
	for _, h := range held {
		l := s.locks.Get(h.Name)
		if l == nil {
			t.Fatalf("client holds no lock %q", h.Name)
		}
		if want, _, _ := strings.Cut(string(l.Data.value), " "); h.Owner != want {
			t.Errorf("lock %q: owner %q, want the holder's token %q", h.Name, h.Owner, want)
		}
		if h.Expires.IsZero() {
			t.Errorf("lock %q: no expiry", h.Name)
		}
	}

	for _, name := range []string{"a/lock", "b-lock"} {
		if err := s.Unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	held, err := s.HeldLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 0 {
		t.Fatalf("HeldLocks after release = %+v, want none", held)
	}
}
