package etcd

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet/storage"
)

func TestHeldLocksListsHeldLocksWithOwnerAndLeavesOutReleasedAndLapsed(t *testing.T) {
	s := newTestStorage(t)
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
	raw := rawClient(t, testEndpoints(t))
	for _, h := range held {
		l := s.locks.Get(h.Name)
		if l == nil {
			t.Fatalf("client holds no lock %q", h.Name)
		}
		got, err := raw.Get(ctx, l.Data.key)
		if err != nil || len(got.Kvs) != 1 {
			t.Fatalf("reading lock key of %q: %v", h.Name, err)
		}
		if want := string(got.Kvs[0].Value); h.Owner != want || h.Token != uint64(l.Data.rev) {
			t.Errorf("lock %q: owner %q token %d, want the holder's token %q and fence %d", h.Name, h.Owner, h.Token, want, l.Data.rev)
		}
		if !h.Expires.After(time.Now()) {
			t.Errorf("lock %q: expires %v, want a running lease", h.Name, h.Expires)
		}
	}

	if err := s.Unlock(ctx, "a-lock"); err != nil {
		t.Fatal(err)
	}
	// End b-lock's lease behind its holder's back, as if it had lapsed.
	if _, err := raw.Revoke(ctx, s.locks.Get("b-lock").Data.lease); err != nil {
		t.Fatal(err)
	}
	held, err = s.HeldLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 0 {
		t.Fatalf("HeldLocks after release and lapse = %+v, want none", held)
	}
}
