package etcd

import (
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/etcdtest"
	"github.com/certfleet/certfleet/storage/storagetest"
)

// conformanceTTL is the LockTTL the suite runs with.
const conformanceTTL = 2 * time.Second

// backend returns the storagetest description of this package's storage.
func backend(t testing.TB) storagetest.Backend {
	endpoints := testEndpoints(t)
	open := func(t testing.TB, namespace string, endpoints []string) *Storage {
		t.Helper()
		// The default Timeout: a 4 MiB write goes through raft and a WAL
		// fsync, which on a busy machine can take more than a second.
		s := openTestStorage(t, Config{Endpoints: endpoints, Prefix: namespace, LockTTL: conformanceTTL,
			MaxRequestBytes: etcdtest.MaxRequestBytes})
		if !storagetest.InChild() {
			// Registered after Close's cleanup, so it runs before it; the
			// keys go either way, as the other clients are done by now.
			t.Cleanup(func() { deletePrefix(t, endpoints, namespace) })
		}
		return s
	}
	return storagetest.Backend{
		New: func(t testing.TB, namespace string) certmagic.Storage {
			return open(t, namespace, endpoints)
		},
		Outage: func(t testing.TB, namespace string) (certmagic.Storage, func(), func()) {
			u, err := url.Parse(endpoints[0])
			if err != nil {
				t.Fatal(err)
			}
			p := storagetest.NewProxy(t, u.Host)
			return open(t, namespace, []string{"http://" + p.Addr()}), p.Cut, p.Restore
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
