package postgres

import (
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/storagetest"
)

// backend describes this storage to the conformance suite. Each namespace is
// a schema of its own, dropped by the process that made it.
func backend(t testing.TB) storagetest.Backend {
	connString := testConnString(t)
	return storagetest.Backend{
		New: func(t testing.TB, namespace string) certmagic.Storage {
			return newTestStorage(t, connString, namespace, nil)
		},
		Outage: func(t testing.TB, namespace string) (certmagic.Storage, func(), func()) {
			p := storagetest.NewProxy(t, serverAddr(t, connString))
			s := newTestStorage(t, viaProxy(t, connString, p.Addr()), namespace, func(c *Config) {
				// Each operation during the outage is bounded by the suite
				// anyway; a shorter retry window keeps the check quick.
				c.RetryTimeout = time.Second
			})
			return s, p.Cut, p.Restore
		},
		LockTTL: testTTL,
	}
}

func TestConformance(t *testing.T) {
	dropRunSchemas(t)
	storagetest.Run(t, backend(t))
}

// BenchmarkStorage measures Store, Load and Lock+Unlock with 1 and 16 clients:
//
//	CERTFLEET_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench . ./storage/postgres/
func BenchmarkStorage(b *testing.B) {
	dropRunSchemas(b)
	storagetest.Bench(b, backend(b))
}
