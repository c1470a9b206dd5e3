package postgres

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/certfleet/certfleet/storage/storagetest"
)

// testEnv names the variable holding the test database's connection string.
const testEnv = "CERTFLEET_TEST_POSTGRES"

// testTTL is the lock TTL of test clients: short, so expiry checks are quick.
const testTTL = 2 * time.Second

// testConnString returns the test database's connection string, or skips.
func testConnString(t testing.TB) string {
	t.Helper()
	cs := os.Getenv(testEnv)
	if cs == "" {
		t.Skipf("%s is not set: set it to a PostgreSQL connection URL to run this test, e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", testEnv, testEnv)
	}
	return cs
}

// uniqueNamespace returns a namespace no other test or test run uses.
func uniqueNamespace(t testing.TB, what string) string {
	t.Helper()
	var b [5]byte
	if _, err := crand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "own_" + hex.EncodeToString(b[:]) + "_" + what
}

// schemaFor maps a namespace to its schema: every namespace gets its own.
func schemaFor(namespace string) string { return "certfleet_test_" + namespace }

var (
	dropMu     sync.Mutex
	dropsArmed = map[string]bool{}
	// runPrefixes holds the "<kind>_<run id>_" prefixes of the suite's
	// namespaces seen in this process; dropRunSchemas drops all their schemas,
	// including those only child processes used.
	runPrefixes = map[string]bool{}
)

// runPrefix returns the suite-run prefix of a storagetest namespace
// ("st_0123456789_4_mutex" -> "st_0123456789_"), or "".
func runPrefix(namespace string) string {
	parts := strings.SplitN(namespace, "_", 3)
	if len(parts) < 3 || len(parts[1]) != 10 {
		return ""
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return ""
	}
	return parts[0] + "_" + parts[1] + "_"
}

// dropRunSchemas arranges for every schema of the suite runs seen by this
// test to be dropped when it ends. Call it before storagetest.Run or Bench.
func dropRunSchemas(t testing.TB) {
	t.Helper()
	if storagetest.InChild() {
		return
	}
	connString := testConnString(t)
	t.Cleanup(func() {
		dropMu.Lock()
		var prefixes []string
		for p := range runPrefixes {
			prefixes = append(prefixes, schemaFor(p))
		}
		dropMu.Unlock()
		if len(prefixes) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, connString)
		if err != nil {
			t.Errorf("dropping test schemas: %v", err)
			return
		}
		defer conn.Close(ctx)
		// A prefix comparison, not LIKE: "_" in the prefix is no wildcard.
		rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace
			WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) AS q(p) WHERE left(nspname, length(q.p)) = q.p)`, prefixes)
		if err != nil {
			t.Errorf("listing test schemas: %v", err)
			return
		}
		schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("listing test schemas: %v", err)
			return
		}
		for _, schema := range schemas {
			dropSchema(t, connString, schema)
		}
	})
}

// newTestStorage returns a client of the storage for namespace, closed when
// the test ends. The first client of a namespace in this process drops its
// schema when its test ends, unless this is a storagetest child process.
func newTestStorage(t testing.TB, connString, namespace string, tweak func(*Config)) *Storage {
	t.Helper()
	cfg := Config{ConnString: connString, Schema: schemaFor(namespace), LockTTL: testTTL}
	if tweak != nil {
		tweak(&cfg)
	}
	if !storagetest.InChild() {
		dropMu.Lock()
		arm := !dropsArmed[cfg.Schema]
		dropsArmed[cfg.Schema] = true
		if p := runPrefix(namespace); p != "" {
			runPrefixes[p] = true
		}
		dropMu.Unlock()
		if arm {
			// Registered before Close, so it runs after it.
			t.Cleanup(func() { dropSchema(t, testConnString(t), cfg.Schema) })
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
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

func dropSchema(t testing.TB, connString, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Errorf("dropping test schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("dropping test schema %s: %v", schema, err)
	}
}

// adminConn returns a connection for inspecting and tampering with the
// database behind the storage's back.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testConnString(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// viaProxy returns connString with its host and port replaced by addr.
func viaProxy(t testing.TB, connString, addr string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			t.Fatalf("%s is not a valid URL: %v", testEnv, err)
		}
		u.Host = addr
		return u.String()
	}
	return connString + " host=" + host + " port=" + port
}

// serverAddr returns host:port of the test database.
func serverAddr(t testing.TB, connString string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		t.Fatalf("%s cannot be parsed: %v", testEnv, err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		t.Skipf("%s names a Unix socket; the outage checks need a TCP address", testEnv)
	}
	return cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
}

// testCtx bounds one operation of a test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// withParam adds a setting to a connection string, URL or DSN.
func withParam(connString, key, value string) string {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		sep := "?"
		if strings.Contains(connString, "?") {
			sep = "&"
		}
		return connString + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
	}
	return connString + " " + key + "=" + value
}
