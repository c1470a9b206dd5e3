package nats

import (
	"context"
	"net/url"
	"os"

	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
)

// EnvPassword names the variable (or, with a _FILE suffix, the file) that
// storage.Open reads the NATS password from when the URL names a user
// without one.
const EnvPassword = "CERTFLEET_NATS_PASSWORD"

func init() {
	storage.Register("nats", open)
}

// open is the storage.OpenFunc of the nats scheme.
func open(ctx context.Context, u *url.URL) (storage.Storage, error) {
	s, err := openEnv(ctx, u, os.Getenv)
	if err != nil {
		return nil, err // not a nil *Storage in a non-nil interface
	}
	return s, nil
}

// openEnv opens u, taking the password from env when u names a user but no
// password.
func openEnv(ctx context.Context, u *url.URL, getenv func(string) string) (*Storage, error) {
	cfg, err := FromURL(u)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		if _, ok := u.User.Password(); !ok {
			pw, err := secretenv.Lookup(getenv, EnvPassword)
			if err != nil {
				return nil, err
			}
			if pw != "" {
				cfg.URL = (&url.URL{Scheme: u.Scheme, User: url.UserPassword(u.User.Username(), pw), Host: u.Host}).String()
			}
		}
	}
	return New(ctx, cfg)
}
