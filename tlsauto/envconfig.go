package tlsauto

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/secretenv"
)

// ConfigFromEnv returns the Config that NewFromEnv would give New, read
// from the same CERTFLEET_* and provider variables and validated as New
// validates it, without creating a Manager or starting anything: for tools
// that inspect a setup, such as the certfleet command. domains are the
// names (CERTFLEET_DOMAINS when none are given); unlike New, it accepts
// none.
//
// Once every other variable is read and valid, the storage is opened within
// ctx (see StorageFromEnv) and Storage is set to it; the returned closer,
// never nil on success, releases it. A storage that cannot be opened is
// reported as a *StorageError; any other error names the variable at fault.
func ConfigFromEnv(ctx context.Context, domains ...string) (Config, io.Closer, error) {
	withoutStorage := func(name string) string {
		if strings.HasPrefix(name, EnvStorage) { // the storage URL, its keys, their _FILE forms
			return ""
		}
		return os.Getenv(name)
	}
	cfg, _, err := configFromEnv(ctx, withoutStorage, domains)
	if err != nil {
		return cfg, nil, fmt.Errorf("tlsauto: %w", err)
	}
	check := cfg
	if len(check.Domains) == 0 {
		check.Domains = []string{"example.com"} // names are optional here
	}
	if _, err := check.validate(); err != nil {
		return cfg, nil, envError(fmt.Errorf("tlsauto: %w", err), len(domains) == 0)
	}
	st, closer, err := StorageFromEnv(ctx)
	if err != nil {
		return cfg, nil, &StorageError{Err: err}
	}
	cfg.Storage = st
	return cfg, closer, nil
}

// StorageError reports that the storage the environment names could not
// be opened (unreachable, refused, misconfigured).
type StorageError struct {
	Err error
}

// Error returns the error of opening the storage.
func (e *StorageError) Error() string { return e.Err.Error() }

// Unwrap returns e.Err.
func (e *StorageError) Unwrap() error { return e.Err }

// StorageFromEnv opens, within ctx, the storage a Manager made by
// NewFromEnv would use (CERTFLEET_STORAGE, CERTFLEET_STORAGE_KEYS, or the
// default directory), reading no other variable: for tools that read the
// fleet's storage alone. The returned closer, never nil on success,
// releases it.
func StorageFromEnv(ctx context.Context) (certmagic.Storage, io.Closer, error) {
	var lookupErr error
	get := func(name string) string {
		v, err := secretenv.Lookup(os.Getenv, name)
		if err != nil && lookupErr == nil {
			lookupErr = err
		}
		return strings.TrimSpace(v)
	}
	st, closer, err := storageFromEnv(ctx, get, os.Getenv)
	if err == nil && lookupErr != nil {
		if closer != nil {
			closer.Close()
		}
		err = lookupErr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tlsauto: %w", err)
	}
	if st == nil {
		s, c, err := defaultStorage()
		if err != nil {
			return nil, nil, fmt.Errorf("tlsauto: %s: %w", EnvStorage, err)
		}
		st, closer = s, c
	}
	return st, orNop(closer), nil
}

// orNop returns c, or a closer that does nothing when c is nil.
func orNop(c io.Closer) io.Closer {
	if c == nil {
		return nopCloser{}
	}
	return c
}

// nopCloser is the closer of storage that needs no closing.
type nopCloser struct{}

func (nopCloser) Close() error { return nil }
