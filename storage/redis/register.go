package redis

import (
	"context"
	"net/url"
	"os"

	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
)

// EnvPassword names the variable (or, with a _FILE suffix, the file) that
// storage.Open reads the Redis password from when the URL has none.
const EnvPassword = "CERTFLEET_REDIS_PASSWORD"

func init() {
	storage.Register("redis", open)
	storage.Register("rediss", open)
}

// open is the storage.OpenFunc of the redis and rediss schemes.
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
	return New(ctx, cfg)
}
