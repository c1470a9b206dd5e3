package storage_test

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/certfleet/certfleet/internal/secrettest"
	"github.com/certfleet/certfleet/storage"
)

// fuzzScheme is registered for FuzzOpen: its backend fails at once,
// touching nothing, with an error that quotes the URL as a backend might
// (redacted, as the contract asks).
const fuzzScheme = "fuzzfail"

var registerFuzz sync.Once

// FuzzOpen holds storage.Open to its promises for any URL: no panic, and
// no error shows the URL's password — whether the URL does not parse, has
// an unknown scheme, or reaches a backend that fails. URLs that would
// reach the file backend (and create directories) are not opened.
//
//	go test -run '^$' -fuzz '^FuzzOpen$' -fuzztime 30s ./storage/
func FuzzOpen(f *testing.F) {
	registerFuzz.Do(func() {
		storage.Register(fuzzScheme, func(_ context.Context, u *url.URL) (storage.Storage, error) {
			return nil, errors.New("cannot reach " + u.Redacted())
		})
	})
	for _, seed := range [][4]string{
		{fuzzScheme, "u", "db.internal:5432", "/certs?sslmode=verify-full"},
		{"postgres", "certs", "db.internal", "/certs"},
		{"redis+sentinel", "", "s1,s2", "/m"},
		{"nosuch", "u", "h", ""},
		{"FUZZFAIL", "u", "[::1", "/x"},
		{fuzzScheme, "u", "h%zz", ""},
		{"http", "u", "h", "/%"},
	} {
		f.Add(seed[0], seed[1], "s3cretSENTINEL", seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, scheme, user, password, host, rest string) {
		raw := scheme + "://" + user + ":" + password + "@" + host + rest
		if s, _, ok := strings.Cut(raw, ":"); ok && strings.EqualFold(s, "file") {
			return
		}
		st, err := storage.Open(context.Background(), raw)
		if err == nil {
			if c, ok := st.(io.Closer); ok {
				c.Close()
			}
			return
		}
		if pw, ok := secrettest.URLPassword(raw); ok && strings.Contains(err.Error(), pw) {
			t.Fatalf("the error about %q shows its password: %v", raw, err)
		}
	})
}
