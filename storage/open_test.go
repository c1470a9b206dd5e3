package storage_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/file"
)

func TestOpenPicksFileBackendForPathsAndFileURLs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, url, wantDir string
	}{
		{"absolute path", dir, dir},
		{"path with a colon", filepath.Join(dir, "a:b"), filepath.Join(dir, "a:b")},
		{"file URL", "file://" + filepath.ToSlash(dir) + "/u", filepath.Join(dir, "u")},
		{"file URL with settings", "file://" + filepath.ToSlash(dir) + "/q?lock_ttl=3s&poll_interval=1s", filepath.Join(dir, "q")},
		{"file URL for localhost", "file://localhost" + filepath.ToSlash(dir) + "/l", filepath.Join(dir, "l")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := storage.Open(context.Background(), tt.url)
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.url, err)
			}
			fs, ok := s.(*file.Storage)
			if !ok {
				t.Fatalf("Open(%q) = %T, want *file.Storage", tt.url, s)
			}
			defer fs.Close()
			if fs.Dir() != tt.wantDir {
				t.Errorf("Open(%q) opened %q, want %q", tt.url, fs.Dir(), tt.wantDir)
			}
		})
	}
}

func TestOpenRejectsBadURLsClearly(t *testing.T) {
	const password = "s3cr3t-sentinel"
	tests := []struct {
		name, url string
		want      []string
		is        error
	}{
		{"empty", " ", []string{"storage URL is empty"}, nil},
		{"postgres not linked", "postgres://user:" + password + "@db.internal/certs",
			[]string{`import _ "github.com/certfleet/certfleet/storage/postgres"`, "storage/all"}, storage.ErrUnknownScheme},
		{"postgresql not linked", "postgresql://user:" + password + "@db/certs",
			[]string{`import _ "github.com/certfleet/certfleet/storage/postgres"`}, storage.ErrUnknownScheme},
		{"redis not linked", "redis://:" + password + "@cache:6379/0",
			[]string{`import _ "github.com/certfleet/certfleet/storage/redis"`}, storage.ErrUnknownScheme},
		{"rediss not linked", "rediss://cache:6380", []string{`storage/redis"`}, storage.ErrUnknownScheme},
		{"unknown scheme", "consul://user:" + password + "@consul:8500", []string{`"consul"`, "registered schemes are", "file"}, storage.ErrUnknownScheme},
		{"unparsable", "postgres://user:" + password + "%zz@db/certs", []string{"not a valid URL", "percent-encode"}, nil},
		{"bad port", "redis://user:" + password + "@host:port" + password, []string{"not a valid URL"}, nil},
		{"file URL with host", "file://server/share", []string{`names host "server"`}, nil},
		{"file URL setting unknown", "file:///tmp/x?lock_tll=3s", []string{`"lock_tll" is unknown`, "lock_ttl"}, nil},
		{"file URL setting invalid", "file:///tmp/x?lock_ttl=soon", []string{`lock_ttl="soon"`, "positive duration"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := storage.Open(context.Background(), tt.url)
			if err == nil {
				t.Fatalf("Open(%q) = %v, want an error", tt.url, s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error %q does not contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Open error %q does not wrap %v", err, tt.is)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("Open error reveals the password: %q", err)
			}
		})
	}
}

func TestRegisteredSchemeIsUsedAndGetsTheParsedURL(t *testing.T) {
	var got *url.URL
	storage.Register("Test-Scheme", func(_ context.Context, u *url.URL) (storage.Storage, error) {
		got = u
		return nil, errors.New("refused by the test")
	})
	_, err := storage.Open(context.Background(), "test-scheme://user:pw@host/path?x=1")
	if err == nil || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("Open: want the backend's error, got %v", err)
	}
	if strings.Contains(err.Error(), "pw@") {
		t.Errorf("Open error reveals the password: %q", err)
	}
	if got == nil || got.Host != "host" || got.Path != "/path" || got.Query().Get("x") != "1" {
		t.Errorf("backend got URL %v", got)
	}
}

func TestRegistrationMistakesAreReportedByOpen(t *testing.T) {
	refuse := func(context.Context, *url.URL) (storage.Storage, error) {
		return nil, errors.New("refused by the test")
	}
	storage.Register("test-twice", refuse)
	storage.Register("Test-Twice", refuse)
	storage.Register("test-nil", nil)
	storage.Register(" ", refuse)
	tests := []struct{ url, want string }{
		{"test-twice://host", `storage scheme "test-twice" is registered twice`},
		{"test-nil://host", `storage.Register("test-nil") was called with a nil function`},
		{"test-unknown://host", "storage.Register was called with an empty scheme"},
	}
	for _, tt := range tests {
		_, err := storage.Open(context.Background(), tt.url)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Open(%q): %v, want an error containing %q", tt.url, err, tt.want)
		}
	}
	if names := storage.Names(); !slices.Contains(names, "test-twice") || slices.Contains(names, "test-nil") || slices.Contains(names, "") {
		t.Errorf("Names() = %v, want test-twice and neither the nil nor the empty registration", names)
	}
}
