package file_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/storage/storagetest"
)

const testTTL = 2 * time.Second

// newTestStorage opens the file storage of a storagetest namespace.
func newTestStorage(t testing.TB, namespace string) certmagic.Storage {
	t.Helper()
	s, err := file.New(context.Background(), file.Config{
		Dir:          storagetest.SharedDir(t, namespace),
		LockTTL:      testTTL,
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// outageStorage opens the storage through a symbolic link that cut turns
// into a loop: every file system call then fails with ELOOP, the closest a
// local directory comes to an unreachable server.
func outageStorage(t testing.TB, namespace string) (certmagic.Storage, func(), func()) {
	t.Helper()
	real := storagetest.SharedDir(t, namespace)
	link := filepath.Join(t.TempDir(), "link")
	point := func(target string) {
		tmp := link + ".tmp"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	point(real)
	s, err := file.New(context.Background(), file.Config{Dir: link, LockTTL: testTTL, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, func() { point(link) }, func() { point(real) }
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, storagetest.Backend{New: newTestStorage, Outage: outageStorage, LockTTL: testTTL})
}

func TestScanPauseStretchesOnLargeDirectoriesOnly(t *testing.T) {
	tests := []struct{ poll, scan, want time.Duration }{
		{2 * time.Second, time.Millisecond, 2 * time.Second},        // small tree: the poll interval
		{2 * time.Second, 400 * time.Millisecond, 20 * time.Second}, // large tree: 50× the scan
		{2 * time.Second, 10 * time.Second, time.Minute},            // huge tree: at most a minute
		{5 * time.Minute, 10 * time.Second, 5 * time.Minute},        // a long poll interval stays
		{50 * time.Millisecond, 10 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := file.ScanPause(tt.poll, tt.scan); got != tt.want {
			t.Errorf("scanPause(%v, %v) = %v, want %v", tt.poll, tt.scan, got, tt.want)
		}
	}
}
