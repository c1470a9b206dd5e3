package redis

import (
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/storagetest"
)

// conformanceTTL is the LockTTL the suite runs with.
const conformanceTTL = 2 * time.Second

// backend returns the storagetest description of this package's storage.
func backend(t testing.TB) storagetest.Backend {
	testAddr(t) // skip early when no server is configured
	open := func(t testing.TB, namespace, addr string) *Storage {
		t.Helper()
		s := openTestStorage(t, Config{Addr: addr, Prefix: namespace, LockTTL: conformanceTTL, Timeout: time.Second})
		if !storagetest.InChild() {
			// Registered after Close's cleanup, so it runs before it; the
			// keys go either way, as the other clients are done by now.
			t.Cleanup(func() { deletePrefix(t, namespace) })
		}
		return s
	}
	return storagetest.Backend{
		New: func(t testing.TB, namespace string) certmagic.Storage {
			return open(t, namespace, testAddr(t))
		},
		Outage: func(t testing.TB, namespace string) (certmagic.Storage, func(), func()) {
			p := storagetest.NewProxy(t, plainAddr(t))
			return open(t, namespace, viaProxy(t, p.Addr())), p.Cut, p.Restore
		},
		LockTTL: conformanceTTL,
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, backend(t))
}

func BenchmarkStorage(b *testing.B) {
	storagetest.Bench(b, backend(b))
}
