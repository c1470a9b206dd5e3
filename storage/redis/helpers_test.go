package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// envTestRedis names the Redis server the tests use.
const envTestRedis = "CERTFLEET_TEST_REDIS"

// testAddr returns the test server's address, or skips the test.
func testAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(envTestRedis)
	if addr == "" {
		t.Skipf("set %s=127.0.0.1:6379 (or a redis:// URL) to run the tests that need a Redis server", envTestRedis)
	}
	return addr
}

// rawClient returns a plain go-redis client of the test server, closed at
// cleanup.
func rawClient(t testing.TB) *goredis.Client {
	t.Helper()
	addr := testAddr(t)
	opt := &goredis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if opt, err = goredis.ParseURL(addr); err != nil {
			t.Fatalf("%s: %v", envTestRedis, err)
		}
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
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

// newTestStorage returns a Storage with a fresh prefix and a short LockTTL.
// At cleanup it is closed and every key of its prefix deleted. change, when
// given, adjusts the Config first.
func newTestStorage(t testing.TB, change ...func(*Config)) *Storage {
	t.Helper()
	cfg := Config{Addr: testAddr(t), Prefix: randomPrefix(t), LockTTL: 2 * time.Second}
	for _, f := range change {
		f(&cfg)
	}
	s := openTestStorage(t, cfg)
	t.Cleanup(func() { deletePrefix(t, cfg.Prefix) })
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

// prefixKeys returns the Redis keys under prefix. SCAN with a pattern is fine
// here: prefixes contain no glob characters, and this is test code.
func prefixKeys(t testing.TB, prefix string) []string {
	t.Helper()
	keys, err := rawClient(t).Keys(testCtx(t), "{"+prefix+"}:*").Result()
	if err != nil {
		t.Fatalf("listing keys of %s: %v", prefix, err)
	}
	return keys
}

// deletePrefix deletes every Redis key under prefix.
func deletePrefix(t testing.TB, prefix string) {
	t.Helper()
	ctx := testCtx(t)
	c := rawClient(t)
	iter := c.Scan(ctx, 0, "{"+prefix+"}:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("cleaning up %s: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := c.Unlink(ctx, keys...).Err(); err != nil {
			t.Errorf("cleaning up %s: %v", prefix, err)
		}
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

// plainAddr returns the test server's host:port.
func plainAddr(t testing.TB) string {
	t.Helper()
	addr := testAddr(t)
	if !strings.Contains(addr, "://") {
		return addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatalf("%s is not a valid URL", envTestRedis)
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	return u.Hostname() + ":" + port
}

// viaProxy returns the test server's address (or URL, keeping its
// credentials and database) with host:port replaced by proxy.
func viaProxy(t testing.TB, proxy string) string {
	t.Helper()
	addr := testAddr(t)
	if !strings.Contains(addr, "://") {
		return proxy
	}
	u, err := url.Parse(addr)
	if err != nil {
		t.Fatalf("%s is not a valid URL", envTestRedis)
	}
	u.Host = proxy
	return u.String()
}
