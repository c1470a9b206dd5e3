package storagetest_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/storage/storagetest"
)

// A backend's test file runs the whole conformance suite from one top-level
// test; this is how storage/file does it.
func ExampleRun() {
	_ = func(t *testing.T) { // func TestConformance(t *testing.T)
		storagetest.Run(t, storagetest.Backend{
			New: func(t testing.TB, namespace string) certmagic.Storage {
				// The same namespace, in this process or a child the suite
				// starts, must reach the same data.
				dir := filepath.Join(storagetest.SharedDir(t, namespace), "data")
				s, err := file.New(context.Background(), file.Config{Dir: dir, LockTTL: 2 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			},
			LockTTL: 2 * time.Second,
		})
	}
}
