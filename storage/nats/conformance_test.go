package nats

import (
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/storagetest"
)

// conformanceTTL is the LockTTL the suite runs with.
const conformanceTTL = 2 * time.Second

// backend returns the storagetest description of this package's storage:
// each namespace is a bucket, deleted when the parent process is done.
func backend(t testing.TB) storagetest.Backend {
	testURL(t) // skip early when no server is configured
	open := func(t testing.TB, namespace, server string) *Storage {
		t.Helper()
		s := openTestStorage(t, Config{URL: server, Bucket: namespace, LockTTL: conformanceTTL, Timeout: time.Second})
		if !storagetest.InChild() {
			t.Cleanup(func() { deleteBucket(t, namespace) })
		}
		return s
	}
	return storagetest.Backend{
		New: func(t testing.TB, namespace string) certmagic.Storage {
			return open(t, namespace, testURL(t))
		},
		Outage: func(t testing.TB, namespace string) (certmagic.Storage, func(), func()) {
			p := storagetest.NewProxy(t, hostPort(t))
			return open(t, namespace, "nats://"+p.Addr()), p.Cut, p.Restore
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
