package postgres

import (
	"context"
	"fmt"
	"net/url"
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
)

// open is the storage.Open entry for postgres:// and postgresql:// URLs:
//
//	postgres://user@host:5432/db?sslmode=verify-full&certfleet_schema=tls&certfleet_table=certs&certfleet_lock_ttl=15s
//
// The certfleet_* parameters set Config.Schema, Table and LockTTL; every
// other part of the URL is the connection string.
func open(ctx context.Context, u *url.URL) (storage.Storage, error) {
	q := u.Query()
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
