package storagetest

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
)

// outageOpTimeout bounds each operation while the backend is unreachable.
const outageOpTimeout = 3 * time.Second

func (r *run) testOutage(t *testing.T) {
	if r.b.Outage == nil {
		t.Skip("Backend.Outage is nil: the backend gives the suite no way to cut its connection, " +
			"so it was not checked that errors during an outage are not reported as fs.ErrNotExist")
	}
	ns := r.namespace("outage")
	s, cut, restore := r.b.Outage(t, ns)
	if s == nil || cut == nil || restore == nil {
		t.Fatal("storagetest: Backend.Outage returned a nil storage, cut or restore")
	}
	acked := map[string][]byte{}
	for _, k := range []string{"o/a", "o/b", "o/c/d"} {
		mustStore(t, s, k, []byte(k))
		acked[k] = []byte(k)
	}
	const lockName = "outage-lock"

	cut()
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	during := func() context.Context { return ctxFor(t, outageOpTimeout) }
	notNotExist := func(op string, err error) {
		t.Helper()
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s while the backend was unreachable: got an error wrapping fs.ErrNotExist (%v); an outage must never look like a missing key", op, err)
		}
	}
	for _, k := range []string{"o/a", "o/missing"} {
		v, err := s.Load(during(), k)
		notNotExist("Load("+k+")", err)
		if err == nil && string(v) != string(acked[k]) {
			t.Errorf("Load(%q) while the backend was unreachable returned %q without an error", k, v)
		}
		_, err = s.Stat(during(), k)
		notNotExist("Stat("+k+")", err)
	}
	if _, err := s.List(during(), "o", true); err != nil {
		notNotExist("List(o)", err)
	}
	if !s.Exists(during(), "o/a") {
		t.Errorf("Exists(%q) = false while the backend was unreachable, for a key that exists: certmagic would replace a certificate it has", "o/a")
	}
	if err := s.Store(during(), "o/during", []byte("during")); err == nil {
		acked["o/during"] = []byte("during")
	}
	deleted := s.Delete(during(), "o/b") == nil
	if deleted {
		delete(acked, "o/b")
	}
	locked := s.Lock(during(), lockName) == nil

	restore()
	restored = true
	if !wait.Until(opTimeout, func() bool { return s.Store(during(), "o/probe", []byte("p")) == nil }) {
		t.Fatalf("Store still fails %v after the backend came back", opTimeout)
	}
	for k, v := range acked {
		mustLoad(t, s, k, v)
	}
	if deleted {
		mustNotExist(t, s, "o/b", "after a Delete acknowledged during the outage")
	}
	if locked {
		mustUnlock(t, s, lockName, "of a lock acquired during the outage")
	}
	mustLock(t, s, lockName, r.b.LockTTL+lockGrace, "after the backend came back")
	mustUnlock(t, s, lockName, "by its holder")
}
