package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/certfleet/certfleet/internal/registry"
)

// OpenFunc opens a backend from a URL whose scheme it was registered for.
type OpenFunc func(ctx context.Context, u *url.URL) (Storage, error)

var backends = registry.Registry[OpenFunc]{
	Func: "storage.Register", What: "storage scheme", Key: "scheme",
}

// builtin maps the schemes of certfleet's own backends to the package that
// registers them, so that Open can say which import is missing.
var builtin = map[string]string{
	"etcd":            "github.com/certfleet/certfleet/storage/etcd",
	"etcds":           "github.com/certfleet/certfleet/storage/etcd",
	"file":            "github.com/certfleet/certfleet/storage/file",
	"nats":            "github.com/certfleet/certfleet/storage/nats",
	"postgres":        "github.com/certfleet/certfleet/storage/postgres",
	"postgresql":      "github.com/certfleet/certfleet/storage/postgres",
	"redis":           "github.com/certfleet/certfleet/storage/redis",
	"redis+cluster":   "github.com/certfleet/certfleet/storage/redis",
	"redis+sentinel":  "github.com/certfleet/certfleet/storage/redis",
	"rediss":          "github.com/certfleet/certfleet/storage/redis",
	"rediss+cluster":  "github.com/certfleet/certfleet/storage/redis",
	"rediss+sentinel": "github.com/certfleet/certfleet/storage/redis",
}

// ErrUnknownScheme is returned (wrapped) by Open for a URL whose scheme no
// linked-in backend registered.
var ErrUnknownScheme = errors.New("unknown storage URL scheme")

// Register makes a backend available to Open under a URL scheme (the
// database/sql driver pattern); backend packages, certfleet's or anyone's,
// call it from their init function. Schemes are case-insensitive.
//
// Register never panics: registering a scheme twice, an empty scheme or a
// nil function makes Open report the mistake instead. The same rules hold
// for dnsprovider.Register.
func Register(scheme string, open OpenFunc) {
	backends.Register(scheme, open)
}

// Names returns the registered schemes, sorted.
func Names() []string {
	return backends.Names()
}

// Open opens the storage that rawURL names, as CERTFLEET_STORAGE gives it:
// a scheme registered by a linked-in backend ("postgres://…", "redis://…",
// "file:///var/lib/certfleet"), or a plain file system path, which means the
// file backend. Errors never include the URL's password.
func Open(ctx context.Context, rawURL string) (Storage, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, errors.New("storage URL is empty: set it to a directory path or a URL such as postgres://host/db")
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	open, _, broken := backends.Lookup(u.Scheme)
	_, _, noScheme := backends.Lookup("")
	switch {
	case broken != nil:
		return nil, fmt.Errorf("storage URL %s: %w", u.Redacted(), broken)
	case open == nil && builtin[u.Scheme] != "":
		return nil, fmt.Errorf("storage URL %s: %w %q: the backend is not linked into this program: add import _ %q (or import _ \"github.com/certfleet/certfleet/storage/all\")",
			u.Redacted(), ErrUnknownScheme, u.Scheme, builtin[u.Scheme])
	case open == nil && noScheme != nil:
		return nil, fmt.Errorf("storage URL %s: %w %q: registered schemes are %s (and %w)", u.Redacted(), ErrUnknownScheme, u.Scheme, strings.Join(Names(), ", "), noScheme)
	case open == nil:
		return nil, fmt.Errorf("storage URL %s: %w %q: registered schemes are %s", u.Redacted(), ErrUnknownScheme, u.Scheme, strings.Join(Names(), ", "))
	}
	s, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("opening storage %s: %w", u.Redacted(), err)
	}
	return s, nil
}

// parseURL parses rawURL, reading a plain path (absolute, relative, or a
// Windows drive path) as a file:// URL. Parse errors are rebuilt so that
// they never echo the input, which may hold a password.
func parseURL(rawURL string) (*url.URL, error) {
	if isPlainPath(rawURL) {
		abs, err := filepath.Abs(rawURL)
		if err != nil {
			return nil, fmt.Errorf("storage path %q: %w", rawURL, err)
		}
		return &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("storage URL is not a valid URL (%v): check its syntax; percent-encode special characters in the user name and password", redactErr(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

// isPlainPath reports whether s is a file system path rather than a URL.
// Without "://", only "scheme:…" with a known scheme counts as a URL, so that
// a path may contain colons.
func isPlainPath(s string) bool {
	if strings.Contains(s, "://") {
		return false
	}
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || len(scheme) < 2 || filepath.VolumeName(s) != "" || strings.ContainsAny(scheme, "/\\") {
		return true
	}
	scheme = strings.ToLower(scheme)
	_, registered, broken := backends.Lookup(scheme)
	_, known := builtin[scheme]
	return !registered && broken == nil && !known
}

// redactErr returns the message of a url.Parse error with the parts it
// quotes from the input removed: they may lie inside a password.
func redactErr(err error) string {
	msg := err.Error()
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			return msg
		}
		j := strings.IndexByte(msg[i+1:], '"')
		if j < 0 {
			return msg[:i] + "…"
		}
		msg = msg[:i] + "…" + msg[i+1+j+1:]
	}
}
