package postgres

import (
	"testing"

	"github.com/certfleet/certfleet/storage"
)

// ownerOf returns the owner token of the lease s holds on name.
func ownerOf(t *testing.T, s *Storage, name string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.held[name]
	if len(ls) == 0 {
		t.Fatalf("client holds no lease on %q", name)
	}
	return ls[len(ls)-1].owner
}

func TestHeldLocksListsHeldLocksWithOwnerAndLeavesOutReleasedAndExpired(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "held")
	s := newTestStorage(t, cs, ns, slowKeepalive) // so the keepalive cannot renew the lease expireLock ends
	var _ storage.LockLister = s
	ctx := testCtx(t)
	for _, name := range []string{"b-lock", "a-lock"} {
		if err := s.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	held, err := s.HeldLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || held[0].Name != "a-lock" || held[1].Name != "b-lock" {
		t.Fatalf("HeldLocks = %+v, want a-lock and b-lock in that order", held)
	}
	for _, h := range held {
		if want := ownerOf(t, s, h.Name); h.Owner != want {
			t.Errorf("lock %q: owner %q, want the holder's token %q", h.Name, h.Owner, want)
		}
		if !h.Expires.After(h.Acquired) || h.Token == 0 {
			t.Errorf("lock %q: acquired %v, expires %v, token %d: want a running lease and a token", h.Name, h.Acquired, h.Expires, h.Token)
		}
	}

	if err := s.Unlock(ctx, "a-lock"); err != nil {
		t.Fatal(err)
	}
	expireLock(t, s, "b-lock")
	held, err = s.HeldLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 0 {
		t.Fatalf("HeldLocks after release and expiry = %+v, want none", held)
	}
}
