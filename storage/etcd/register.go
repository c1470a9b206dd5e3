package etcd

import (
	"context"
	"net/url"
	"os"

	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
)

// EnvPassword names the variable (or, with a _FILE suffix, the file) that
// storage.Open reads the etcd password from when the URL has a user name but
// no password.
const EnvPassword = "CERTFLEET_ETCD_PASSWORD"

func init() {
	storage.Register("etcd", open)
	storage.Register("etcds", open)
}

// open is the storage.OpenFunc of the etcd and etcds schemes.
func open(ctx context.Context, u *url.URL) (storage.Storage, error) {
	s, err := openEnv(ctx, u, os.Getenv)
	if err != nil {
		return nil, err // not a nil *Storage in a non-nil interface
	}
	return s, nil
}

// openEnv opens u, taking the password from env when u has a user but no
// password.
func openEnv(ctx context.Context, u *url.URL, getenv func(string) string) (*Storage, error) {
	cfg, err := FromURL(u)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		if _, ok := u.User.Password(); !ok {
			if cfg.Password, err = secretenv.Lookup(getenv, EnvPassword); err != nil {
				return nil, err
			}
		}
	}
	return New(ctx, cfg)
}
