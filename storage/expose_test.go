package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
	"github.com/certfleet/certfleet/storage/file"
)

func TestExposedWrapperUnwrapsAndDescribesItself(t *testing.T) {
	inner, err := file.New(context.Background(), file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	s, err := encrypt.New(encrypt.Config{Storage: inner, Keys: [][]byte{bytes.Repeat([]byte{1}, encrypt.KeySize)}})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := s.(interface{ Unwrap() storage.Storage })
	if !ok || u.Unwrap() != storage.Storage(inner) {
		t.Errorf("Unwrap of an exposed wrapper does not return the wrapped storage")
	}
	if got := fmt.Sprint(s); !strings.HasPrefix(got, "encrypted") || !strings.Contains(got, fmt.Sprint(inner)) {
		t.Errorf("an exposed wrapper prints as %q, want the wrapper's own String", got)
	}
	// A wrapper of a wrapper sees the inner wrapper's exact interfaces.
	outer, err := encrypt.New(encrypt.Config{Storage: struct{ storage.Storage }{s}, Keys: [][]byte{bytes.Repeat([]byte{2}, encrypt.KeySize)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := outer.(storage.Watcher); ok {
		t.Error("a wrapper of a storage without a change feed is a storage.Watcher")
	}
	if err := outer.Store(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}
