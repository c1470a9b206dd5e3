package file_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certfleet/certfleet/storage/file"
)

func open(t testing.TB, dir string) *file.Storage {
	t.Helper()
	s, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	ctx := context.Background()
	if err := s.Store(ctx, "certificates/acme/example.com/example.com.key", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	defer s.Unlock(ctx, "issue_cert_example.com")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStoredFilesAreReadableOnDisk(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	key := "certificates/acme-v02.api.letsencrypt.org-directory/wildcard_.example.com/wildcard_.example.com.crt"
	if err := s.Store(context.Background(), key, []byte("PEM")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(key)))
	if err != nil || string(b) != "PEM" {
		t.Errorf("certmagic's usual keys should keep their path on disk: %q, %v", b, err)
	}
}

func TestLeftoversAndForeignFilesAreInvisible(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if err := s.Store(ctx, "a/b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a/~tmp-123", "README", "a/UPPER", "only-temp/~tmp-1"} {
		path := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.List(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, " ") != "a a/b only-temp" && strings.Join(keys, " ") != "a a/b" {
		t.Errorf("List = %q, want only the storage's keys", keys)
	}
	if s.Exists(ctx, "only-temp") {
		t.Error("a directory holding only a leftover temporary file exists")
	}
}

func TestValueAndDirectoryConflictsFailClearly(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	if err := s.Store(ctx, "a/b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ key, want string }{
		{"a", "is a directory"},
		{"a/b/c", "holds a value"},
	} {
		err := s.Store(ctx, tt.key, []byte("x"))
		if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Store(%q): want an error containing %q, not fs.ErrNotExist; got %v", tt.key, tt.want, err)
		}
	}
	for _, key := range []string{"", "/a", "a/", "a//b"} {
		if err := s.Store(ctx, key, nil); err == nil {
			t.Errorf("Store(%q) of an invalid key succeeded", key)
		}
		if _, err := s.Load(ctx, key); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) of an invalid key: want an error that is not fs.ErrNotExist, got %v", key, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg  file.Config
		want string
	}{
		{file.Config{}, "Config.Dir is empty"},
		{file.Config{Dir: t.TempDir(), LockTTL: -1}, "Config.LockTTL is negative"},
		{file.Config{Dir: t.TempDir(), PollInterval: -1}, "Config.PollInterval is negative"},
	} {
		if _, err := file.New(context.Background(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v): want an error containing %q, got %v", tt.cfg, tt.want, err)
		}
	}
}

func ExampleNew() {
	dir, err := os.MkdirTemp("", "certfleet-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	s, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	ctx := context.Background()
	if err := s.Lock(ctx, "issue_cert_example.com"); err != nil {
		fmt.Println(err)
		return
	}
	if err := s.Store(ctx, "certificates/example.com/example.com.crt", []byte("PEM")); err != nil {
		fmt.Println(err)
	}
	// An error wrapping storage.ErrLockLost here means another process took
	// the lock over while this one stalled.
	if err := s.Unlock(ctx, "issue_cert_example.com"); err != nil {
		fmt.Println(err)
	}
	v, err := s.Load(ctx, "certificates/example.com/example.com.crt")
	fmt.Println(string(v), err)
	// Output: PEM <nil>
}
