package file_test

import (
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/storagetest"
)

func BenchmarkFile(b *testing.B) {
	storagetest.Bench(b, storagetest.Backend{New: newTestStorage, LockTTL: testTTL})
}

// BenchmarkCertmagicFileStorage measures certmagic's own FileStorage in the
// same run, for comparison.
func BenchmarkCertmagicFileStorage(b *testing.B) {
	storagetest.Bench(b, storagetest.Backend{New: func(t testing.TB, ns string) certmagic.Storage {
		return &certmagic.FileStorage{Path: storagetest.SharedDir(t, ns)}
	}, LockTTL: testTTL})
}
