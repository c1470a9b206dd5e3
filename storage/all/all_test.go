package all_test

import (
	"slices"
	"testing"

	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/all"
)

func TestEveryBuiltinSchemeIsRegistered(t *testing.T) {
	got := storage.Names()
	for _, want := range []string{"etcd", "etcds", "file", "nats", "postgres", "postgresql", "redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"} {
		if !slices.Contains(got, want) {
			t.Errorf("scheme %q is not registered (registered: %v)", want, got)
		}
	}
}
