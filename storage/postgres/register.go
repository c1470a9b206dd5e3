package postgres

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/certfleet/certfleet/storage"
)

func init() {
	storage.Register("postgres", open)
	storage.Register("postgresql", open)
}

// URL query parameters read by storage.Open (and removed before the URL
// reaches pgx, which would send unknown ones to the server as settings).
const (
	paramSchema  = "certfleet_schema"
	paramTable   = "certfleet_table"
	paramLockTTL = "certfleet_lock_ttl"

	// paramPrefix starts every parameter certfleet reads; any other one with
	// it is a mistake (a typo would otherwise reach PostgreSQL as a setting
	// or be lost).
	paramPrefix = "certfleet_"
)

// open is the storage.Open entry for postgres:// and postgresql:// URLs:
//
//	postgres://user@host:5432/db?sslmode=verify-full&certfleet_schema=tls&certfleet_table=certs&certfleet_lock_ttl=15s
//
// The certfleet_* parameters set Config.Schema, Table and LockTTL; an
// unknown certfleet_* parameter is an error naming it. Every other part of
// the URL is the connection string: pgx reads its own parameters (sslmode,
// pool_max_conns, ...) and sends the rest to the server as settings, which
// refuses those it does not know when connecting.
func open(ctx context.Context, u *url.URL) (storage.Storage, error) {
	q := u.Query()
	var unknown []string
	for name := range q {
		if strings.HasPrefix(strings.ToLower(name), paramPrefix) && name != paramSchema && name != paramTable && name != paramLockTTL {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("postgres storage: unknown URL parameter %q: the accepted certfleet parameters are %s, %s and %s",
			unknown[0], paramSchema, paramTable, paramLockTTL)
	}
	take := func(name string) string {
		v := q.Get(name)
		q.Del(name)
		return v
	}
	cfg := Config{Schema: take(paramSchema), Table: take(paramTable)}
	if v := take(paramLockTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("postgres storage: URL parameter %s=%q is not a positive duration: give one such as 15s", paramLockTTL, v)
		}
		cfg.LockTTL = d
	}
	conn := *u
	conn.RawQuery = q.Encode()
	cfg.ConnString = conn.String()
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}
