package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"testing"

	"github.com/certfleet/certfleet/storage"
)

// lockNames returns the names in a lock list.
func lockNames(l lockList) []string {
	var names []string
	for _, h := range l.Held {
		names = append(names, h.Name)
	}
	return names
}

func TestStatusListsTheLocksOfARedisStorage(t *testing.T) {
	addr := os.Getenv("CERTFLEET_TEST_REDIS")
	if addr == "" {
		t.Skip("CERTFLEET_TEST_REDIS is not set: set it to a Redis address to run this test, e.g. CERTFLEET_TEST_REDIS=127.0.0.1:6379")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	ctx := context.Background()
	st, err := storage.Open(ctx, "redis://"+addr+"?prefix=certfleet_status_test_"+tag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := st.(io.Closer); ok {
			_ = c.Close()
		}
	})
	name := "status-" + tag
	if err := st.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	l := heldLocks(ctx, st)
	if !l.Visible || !slices.Contains(lockNames(l), name) {
		t.Fatalf("status locks = %+v, want %q visible and listed", l, name)
	}
	if err := st.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if l := heldLocks(ctx, st); !l.Visible || slices.Contains(lockNames(l), name) {
		t.Fatalf("status locks after Unlock = %+v, want %q gone", l, name)
	}
}
