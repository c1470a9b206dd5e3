package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/etcdtest"
)

// testEndpoints returns the endpoints of the etcd server the tests use
// (started for this test binary unless CERTFLEET_TEST_ETCD names one).
func testEndpoints(t testing.TB) []string {
	t.Helper()
	return strings.Split(etcdtest.Server(t), ",")
}

// randomPrefix returns a prefix no other test run uses.
func randomPrefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "certfleet_test_" + hex.EncodeToString(b[:])
}

// newTestStorage returns a Storage with a fresh prefix, a short LockTTL and
// the test server's request limit. At cleanup it is closed and every key of
// its prefix deleted. change, when given, adjusts the Config first.
func newTestStorage(t testing.TB, change ...func(*Config)) *Storage {
	t.Helper()
	cfg := Config{Endpoints: testEndpoints(t), Prefix: randomPrefix(t), LockTTL: 2 * time.Second, MaxRequestBytes: etcdtest.MaxRequestBytes}
	for _, f := range change {
		f(&cfg)
	}
	s := openTestStorage(t, cfg)
	t.Cleanup(func() { deletePrefix(t, cfg.Endpoints, cfg.Prefix) })
	return s
}

// openTestStorage opens cfg and closes it at cleanup.
func openTestStorage(t testing.TB, cfg Config) *Storage {
	t.Helper()
	s, err := New(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawClient returns a plain etcd client of endpoints, closed at cleanup.
func rawClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// deletePrefix deletes every etcd key of prefix.
func deletePrefix(t testing.TB, endpoints []string, prefix string) {
	t.Helper()
	if _, err := rawClient(t, endpoints).Delete(testCtx(t), prefix+"/", clientv3.WithPrefix()); err != nil {
		t.Errorf("cleaning up %s: %v", prefix, err)
	}
}

// testCtx bounds one step of a test, so that a hang fails instead of
// stalling the run.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
