package file_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/file"
)

// permDir returns a new directory with mode perm (not subject to umask).
func permDir(t *testing.T, perm os.FileMode) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

func dirMode(t *testing.T, dir string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestNewRefusesADirectoryOthersCanWrite(t *testing.T) {
	for _, perm := range []os.FileMode{0o770, 0o702, 0o777} {
		dir := permDir(t, perm)
		s, err := file.New(t.Context(), file.Config{Dir: dir})
		if err == nil {
			s.Close()
			t.Fatalf("New accepted a directory of mode %04o", perm)
		}
		for _, want := range []string{dir, "chmod 700", "FixPermissions", "fix_permissions=true"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: error %q does not contain %q", perm, err, want)
			}
		}
		if got := dirMode(t, dir); got != perm {
			t.Errorf("New changed the mode to %04o without FixPermissions", got)
		}
		if _, err := storage.Open(t.Context(), dir); err == nil {
			t.Errorf("storage.Open accepted a directory of mode %04o", perm)
		}
	}
}

func TestFixPermissionsTightensTheDirectoryTo0700(t *testing.T) {
	dir := permDir(t, 0o777)
	s, err := file.New(t.Context(), file.Config{Dir: dir, FixPermissions: true})
	if err != nil {
		t.Fatalf("New with FixPermissions: %v", err)
	}
	s.Close()
	if got := dirMode(t, dir); got != 0o700 {
		t.Errorf("mode after New with FixPermissions is %04o, want 0700", got)
	}

	dir = permDir(t, 0o775)
	st, err := storage.Open(t.Context(), "file://"+filepath.ToSlash(dir)+"?fix_permissions=true")
	if err != nil {
		t.Fatalf("storage.Open with fix_permissions=true: %v", err)
	}
	st.(*file.Storage).Close()
	if got := dirMode(t, dir); got != 0o700 {
		t.Errorf("mode after storage.Open with fix_permissions=true is %04o, want 0700", got)
	}
}

func TestNewWarnsWhenOthersCanReadTheDirectory(t *testing.T) {
	dir := permDir(t, 0o755)
	var logs bytes.Buffer
	s, err := file.New(t.Context(), file.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New refused a directory others can only read: %v", err)
	}
	s.Close()
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, dir) || !strings.Contains(out, "readable by group or others") {
		t.Errorf("no warning naming %s; logs:\n%s", dir, out)
	}
	if got := dirMode(t, dir); got != 0o755 {
		t.Errorf("New changed the mode to %04o without FixPermissions", got)
	}

	logs.Reset()
	private := permDir(t, 0o700)
	s, err = file.New(t.Context(), file.Config{Dir: private, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if logs.Len() != 0 {
		t.Errorf("a 0700 directory was warned about:\n%s", logs.String())
	}
}

func TestOpenRefusesAnUnknownURLParameter(t *testing.T) {
	dir := permDir(t, 0o700)
	_, err := storage.Open(t.Context(), "file://"+filepath.ToSlash(dir)+"?lockttl=3s")
	if err == nil || !strings.Contains(err.Error(), `"lockttl"`) || !strings.Contains(err.Error(), "lock_ttl, poll_interval, rescan and fix_permissions") {
		t.Errorf("storage.Open with lockttl=3s: %v, want an error naming it and the accepted parameters", err)
	}
}
