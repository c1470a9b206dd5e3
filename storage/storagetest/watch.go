package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

func (r *run) testWatch(t *testing.T) {
	ns := r.namespace("watch")
	watcher, writer := r.client(t, ns), r.client(t, ns)
	w, ok := watcher.(storage.Watcher)
	if !ok {
		t.Skipf("%T does not implement storage.Watcher", watcher)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := w.Watch(ctx)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%T does not support Watch here: %v", watcher, err)
	}
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	// expect waits until key (or "", meaning reload everything) is reported.
	expect := func(key, what string) {
		t.Helper()
		timer := time.NewTimer(opTimeout)
		defer timer.Stop()
		for {
			select {
			case got, ok := <-ch:
				if !ok {
					t.Fatalf("Watch channel closed before %s was reported", what)
				}
				if got == key || got == "" {
					return
				}
			case <-timer.C:
				t.Fatalf("%s by another client was not reported by Watch within %v", what, opTimeout)
			}
		}
	}
	mustStore(t, writer, "watched/new", []byte("1"))
	expect("watched/new", "a Store of a new key")
	mustStore(t, writer, "watched/new", []byte("2"))
	expect("watched/new", "a Store replacing a value")
	if err := writer.Delete(opCtx(t), "watched/new"); err != nil {
		t.Fatal(err)
	}
	expect("watched/new", "a Delete")

	cancel()
	closed := wait.Until(opTimeout, func() bool {
		select {
		case _, ok := <-ch:
			return !ok
		default:
			return false
		}
	})
	if !closed {
		t.Errorf("Watch channel still open %v after its context ended", opTimeout)
	}
}
