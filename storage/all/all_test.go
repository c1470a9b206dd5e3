package all_test

import (
	"slices"
	"testing"

	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/all"
)

func TestEveryBuiltinSchemeIsRegistered(t *testing.T) {
	got := storage.Schemes()
	for _, want := range []string{"etcd", "etcds", "file", "nats", "postgres", "postgresql", "redis", "rediss"} {
		if !slices.Contains(got, want) {
			t.Errorf("scheme %q is not registered (registered: %v)", want, got)
		}
	}
}
