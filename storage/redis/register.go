package redis

import (
	"context"
	"net/url"
	"os"
	"strings"

	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
)

// EnvPassword names the variable (or, with a _FILE suffix, the file) that
// storage.Open reads the Redis password from when the URL has none.
const EnvPassword = "CERTFLEET_REDIS_PASSWORD"

// EnvSentinelPassword names the variable (or, with a _FILE suffix, the
// file) that storage.Open reads the sentinels' password from, for
// redis+sentinel:// URLs.
const EnvSentinelPassword = "CERTFLEET_REDIS_SENTINEL_PASSWORD"

func init() {
	for scheme := range schemes {
		storage.Register(scheme, open)
	}
}

// open is the storage.OpenFunc of the redis, rediss, redis+sentinel,
// rediss+sentinel, redis+cluster and rediss+cluster schemes.
func open(ctx context.Context, u *url.URL) (storage.Storage, error) {
	s, err := openEnv(ctx, u, os.Getenv)
	if err != nil {
		return nil, err // not a nil *Storage in a non-nil interface
	}
	return s, nil
}

// openEnv opens u, taking the password from getenv when u has none.
func openEnv(ctx context.Context, u *url.URL, getenv func(string) string) (*Storage, error) {
	cfg := Config{Addr: u.String()}
	if _, ok := u.User.Password(); !ok {
		pw, err := secretenv.Lookup(getenv, EnvPassword)
		if err != nil {
			return nil, err
		}
		cfg.Password = pw
	}
	if strings.HasSuffix(u.Scheme, "+sentinel") {
		pw, err := secretenv.Lookup(getenv, EnvSentinelPassword)
		if err != nil {
			return nil, err
		}
		cfg.SentinelPassword = pw
	}
	return New(ctx, cfg)
}
