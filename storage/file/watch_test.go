package file

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nextKeys collects reported keys until every key of want has been seen,
// failing after a deadline.
func awaitKeys(t *testing.T, ch <-chan string, want ...string) {
	t.Helper()
	missing := slices.Clone(want)
	deadline := time.After(10 * time.Second)
	for len(missing) > 0 {
		select {
		case k, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			if k == "" {
				t.Fatalf("watch asked for a full reload while waiting for %q", missing)
			}
			missing = slices.DeleteFunc(missing, func(m string) bool { return m == k })
		case <-deadline:
			t.Fatalf("keys %q not reported within 10s", missing)
		}
	}
}

func TestWatchReportsLocalChangesWithoutRescanning(t *testing.T) {
	dir := t.TempDir()
	// An hour between rescans: only inotify can report within the test.
	s, err := New(context.Background(), Config{Dir: dir, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := New(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := t.Context()
	if err := other.Store(ctx, "certificates/old/a.crt", []byte("1")); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.feed.tree != nil {
		t.Fatalf("feed rescans (%s) on a local file system", s.feed.reason)
	}
	long := "certificates/" + strings.Repeat("Long", 150) + "/x.crt" // split into chunk directories
	for _, k := range []string{"certificates/old/a.crt", "certificates/new/deep/b.crt", long} {
		if err := other.Store(ctx, k, []byte("2")); err != nil {
			t.Fatal(err)
		}
		awaitKeys(t, ch, k)
	}
	if err := other.Delete(ctx, "certificates/new"); err != nil {
		t.Fatal(err)
	}
	awaitKeys(t, ch, "certificates/new/deep/b.crt")
	// Lock files and temporary files are not keys.
	if err := other.Lock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := other.Unlock(ctx, "n"); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(ctx, "last", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case k := <-ch:
		if k != "last" {
			t.Fatalf("reported %q, want only the stored key \"last\"", k)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Store of \"last\" not reported")
	}
}

func TestWatchReportsValuesOfADirectoryMovedIn(t *testing.T) {
	dir := t.TempDir()
	s, err := New(context.Background(), Config{Dir: dir, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch, err := s.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Built outside, then moved in whole: no event for its files, only for
	// the directory; Watch must look inside.
	staging := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(filepath.Join(staging, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a", "sub/b"} {
		if err := os.WriteFile(filepath.Join(staging, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(staging, filepath.Join(dir, "moved")); err != nil {
		t.Skipf("cannot move a directory between the two temporary directories: %v", err)
	}
	awaitKeys(t, ch, "moved/a", "moved/sub/b")
}

func TestRescanReadsOnlyDirectoriesWhoseModTimeChanged(t *testing.T) {
	dir := t.TempDir()
	s, err := New(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for _, k := range []string{"a/x", "a/y", "b/z"} {
		if err := s.Store(ctx, k, []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	// Age every directory past the racy window, as a tree written long ago.
	past := time.Now().Add(-time.Hour)
	for _, d := range []string{"a", "b", "."} {
		if err := os.Chtimes(filepath.Join(dir, d), past, past); err != nil {
			t.Fatal(err)
		}
	}
	tr := newTree()
	var got []string
	collect := func(k string) { got = append(got, k) }
	if err := tr.scan(dir, collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("first scan reported %q, want the 3 values", got)
	}

	got = nil
	if err := s.Store(ctx, "a/y", []byte("22")); err != nil { // renamed into a/: a's time changes
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "c/new", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := tr.scan(dir, collect); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"a/y", "b/z", "c/new"}; !slices.Equal(got, want) {
		t.Fatalf("rescan reported %q, want %q", got, want)
	}

	// A file rewritten in place (not how the storage writes) leaves its
	// directory's time alone: the pruned rescan does not read that directory.
	for _, d := range []string{"a", "c", "."} {
		if err := os.Chtimes(filepath.Join(dir, d), past, past); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.scan(dir, func(string) {}); err != nil { // take in the aged times
		t.Fatal(err)
	}
	got = nil
	if err := os.WriteFile(filepath.Join(dir, "a", "x"), []byte("in place"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tr.scan(dir, collect); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("rescan read a directory whose modification time did not change: reported %q", got)
	}
}

func TestNewSweepsTemporaryFilesLeftByCrashedWriters(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	files := map[string]bool{ // path → should survive New
		"certificates/x/" + tempPrefix + "123":         false,
		lockDirName + "/abcd/" + tempPrefix + "456":    false,
		"certificates/x/" + tempPrefix + "fresh":       true, // a write in progress elsewhere
		"certificates/x/x.crt":                         true,
		"certificates/x/not" + tempPrefix + "ours.crt": true,
	}
	for p := range files {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(p, "fresh") {
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := New(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, keep := range files {
		_, err := os.Stat(filepath.Join(dir, p))
		if exists := err == nil; exists != keep {
			t.Errorf("%s: exists after New = %t, want %t", p, exists, keep)
		}
	}
}

func TestNewHonoursContextDuringSweep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(ctx, Config{Dir: t.TempDir()}); err == nil {
		t.Fatal("New with an ended context succeeded")
	}
}
