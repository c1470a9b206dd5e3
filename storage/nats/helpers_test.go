package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// envTestNATS names the NATS server (JetStream enabled) the tests use.
const envTestNATS = "CERTFLEET_TEST_NATS"

// testURL returns the test server's URL, or skips the test.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envTestNATS)
	if u == "" {
		t.Skipf("set %s=nats://127.0.0.1:4222 to run the tests that need a NATS server with JetStream", envTestNATS)
	}
	return u
}

// randomBucket returns a bucket name no other test run uses.
func randomBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "certfleet_test_" + hex.EncodeToString(b[:])
}

// newTestStorage returns a Storage in a fresh bucket with a short LockTTL.
// At cleanup it is closed and the bucket deleted.
func newTestStorage(t testing.TB, change ...func(*Config)) *Storage {
	t.Helper()
	cfg := Config{URL: testURL(t), Bucket: randomBucket(t), LockTTL: 2 * time.Second}
	for _, f := range change {
		f(&cfg)
	}
	s := openTestStorage(t, cfg)
	t.Cleanup(func() { deleteBucket(t, cfg.Bucket) })
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

// deleteBucket deletes a bucket of the test server.
func deleteBucket(t testing.TB, bucket string) {
	t.Helper()
	nc, err := natsgo.Connect(testURL(t))
	if err != nil {
		t.Errorf("deleting bucket %s: %v", bucket, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err == nil {
		err = js.DeleteKeyValue(testCtx(t), bucket)
	}
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("deleting bucket %s: %v", bucket, err)
	}
}

// hostPort returns the test server's host:port.
func hostPort(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(testURL(t))
	if err != nil {
		t.Fatalf("%s is not a URL", envTestNATS)
	}
	return u.Host
}

// testCtx bounds one step of a test.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
