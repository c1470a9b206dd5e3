// Package backendtest gives tests storage URLs for every backend this
// machine can run — a directory, and PostgreSQL and Redis when
// CERTFLEET_TEST_POSTGRES / CERTFLEET_TEST_REDIS name a server — each in a
// namespace of its own (a schema, a key prefix) that is removed when the test
// ends, so that concurrent test runs on one server never meet.
package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"
)

// Environment variables naming the test servers.
const (
	EnvPostgres = "CERTFLEET_TEST_POSTGRES" // e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable
	EnvRedis    = "CERTFLEET_TEST_REDIS"    // e.g. 127.0.0.1:6379 or redis://127.0.0.1:6379/0
)

// Backend is one storage to test against.
type Backend struct {
	Name string // "file", "postgres", "redis"
	URL  string // for storage.Open; the same URL in every process reaches the same data
}

// All returns every backend available here. Backends whose server is not
// configured are left out, with a log line saying which variable to set.
func All(t testing.TB) []Backend {
	t.Helper()
	bs := []Backend{File(t)}
	if b, ok := Postgres(t); ok {
		bs = append(bs, b)
	}
	if b, ok := Redis(t); ok {
		bs = append(bs, b)
	}
	return bs
}

// File returns a directory of the test's own.
func File(t testing.TB) Backend {
	return Backend{Name: "file", URL: t.TempDir()}
}

// Postgres returns a URL with a schema of the test's own, dropped at the end
// of the test; ok is false when EnvPostgres is unset.
func Postgres(t testing.TB) (b Backend, ok bool) {
	t.Helper()
	raw := strings.TrimSpace(os.Getenv(EnvPostgres))
	if raw == "" {
		t.Logf("PostgreSQL backend not tested: set %s to a server URL", EnvPostgres)
		return Backend{}, false
	}
	schema := "certfleet_it_" + randomHex(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s is not a URL", EnvPostgres)
	}
	q := u.Query()
	q.Set("certfleet_schema", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, raw)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return Backend{Name: "postgres", URL: u.String()}, true
}

// Redis returns a URL with a key prefix of the test's own, whose keys are
// deleted at the end of the test; ok is false when EnvRedis is unset.
func Redis(t testing.TB) (b Backend, ok bool) {
	t.Helper()
	raw := strings.TrimSpace(os.Getenv(EnvRedis))
	if raw == "" {
		t.Logf("Redis backend not tested: set %s to a server address", EnvRedis)
		return Backend{}, false
	}
	if !strings.Contains(raw, "://") {
		raw = "redis://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s is not an address or URL", EnvRedis)
	}
	prefix := "certfleet_it_" + randomHex(t)
	q := u.Query()
	q.Set("prefix", prefix)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		opts, err := goredis.ParseURL(raw)
		if err != nil {
			t.Errorf("cleaning up prefix %s: %v", prefix, err)
			return
		}
		c := goredis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("cleaning up prefix %s: %v", prefix, err)
		}
	})
	return Backend{Name: "redis", URL: u.String()}, true
}

func randomHex(t testing.TB) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
