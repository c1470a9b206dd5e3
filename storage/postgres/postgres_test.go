package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no connection string", Config{}, "Config.ConnString is empty"},
		{"table with a quote", Config{ConnString: "postgres://h/db", Table: `t"; DROP TABLE x; --`}, "Config.Table"},
		{"table starting with a digit", Config{ConnString: "postgres://h/db", Table: "1t"}, "Config.Table"},
		{"table too long", Config{ConnString: "postgres://h/db", Table: strings.Repeat("t", 60)}, "Config.Table"},
		{"schema with a dot", Config{ConnString: "postgres://h/db", Schema: "a.b"}, "Config.Schema"},
		{"lock TTL too short", Config{ConnString: "postgres://h/db", LockTTL: time.Millisecond}, "Config.LockTTL"},
		{"unparsable connection string", Config{ConnString: "postgres://u:pw@h:notaport/db"}, "Config.ConnString cannot be parsed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(context.Background(), c.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New accepted %+v", c.cfg)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("New error = %q, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestErrorsNeverShowThePassword(t *testing.T) {
	const secret = "S3NTINEL-pa55word"
	for _, cs := range []string{
		"postgres://user:" + secret + "@h:notaport/db",    // unparsable URL
		"host=h port=x password=" + secret,                // unparsable DSN
		"postgres://user:" + secret + "@127.0.0.1:1/db",   // nothing listens on port 1
		"host=127.0.0.1 port=1 user=u password=" + secret, // same, as a DSN
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := New(ctx, Config{ConnString: cs})
		cancel()
		if err == nil {
			s.Close()
			t.Fatalf("New succeeded with an unreachable server")
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
			t.Errorf("New error shows the password: %v", err)
		}
	}
}

func TestStringHidesConnectionString(t *testing.T) {
	const secret = "S3NTINEL-pa55word"
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "string"), func(c *Config) {
		c.ConnString = withParam(c.ConnString, "application_name", secret) // stands in for a password
	})
	for _, out := range []string{s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s)} {
		if strings.Contains(out, secret) {
			t.Errorf("formatting the storage shows its connection string: %s", out)
		}
	}
}

func TestNewCreatesTablesOnceWhenMembersStartTogether(t *testing.T) {
	cs := testConnString(t)
	ns := uniqueNamespace(t, "setup")
	// The first client arms the schema's drop; the others start together.
	newTestStorage(t, cs, ns, func(c *Config) { c.Table = "warmup" })
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			s, err := New(testCtx(t), Config{ConnString: cs, Schema: schemaFor(ns), LockTTL: testTTL})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("New, started together with others: %v", err)
	}
}

func TestNewUsesTheCurrentSchemaByDefault(t *testing.T) {
	cs := testConnString(t)
	ns := uniqueNamespace(t, "defschema")
	newTestStorage(t, cs, ns, nil) // creates the schema, and drops it at the end
	s, err := New(testCtx(t), Config{ConnString: withParam(cs, "search_path", schemaFor(ns)), Table: "bydefault"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.schema != schemaFor(ns) {
		t.Errorf("schema = %q, want the search_path's %q", s.schema, schemaFor(ns))
	}
}

func TestTransientErrorsAreTold(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"connection reset", fmt.Errorf("reading: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"no rows", pgx.ErrNoRows, false},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"permission denied", &pgconn.PgError{Code: "42501"}, false},
		{"bad password", &pgconn.PgError{Code: "28P01"}, false},
		{"context canceled", fmt.Errorf("op: %w", context.Canceled), false},
		{"deadline", context.DeadlineExceeded, false},
		{"other", errors.New("something else"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%s: %v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
