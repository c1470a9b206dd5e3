package storagetest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/storage/storagetest"
)

// metaEnv selects the broken backend TestBrokenBackendHelper runs the suite
// against, in a process started by TestSuiteRejectsBrokenBackends.
const metaEnv = "STORAGETEST_BROKEN_BACKEND"

const ttl = 2 * time.Second

func fileStorage(t testing.TB, dir string) *file.Storage {
	t.Helper()
	s, err := file.New(context.Background(), file.Config{Dir: dir, LockTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// overMatching lists by string prefix, as glob and LIKE based backends do.
type overMatching struct{ *file.Storage }

func (s overMatching) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	parent, _, _ := strings.Cut(prefix, "/")
	all, err := s.Storage.List(ctx, parent, true)
	var keys []string
	for _, k := range all {
		if strings.HasPrefix(k, prefix) && k != prefix && (recursive || !strings.Contains(k[len(prefix)+1:], "/")) {
			keys = append(keys, k)
		}
	}
	return keys, err
}

// notFoundOnError reports every Load and Stat error as a missing key.
type notFoundOnError struct{ *file.Storage }

func (s notFoundOnError) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.Storage.Load(ctx, key)
	if err != nil {
		return nil, fs.ErrNotExist
	}
	return v, nil
}

func (s notFoundOnError) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	info, err := s.Storage.Stat(ctx, key)
	if err != nil {
		return info, fs.ErrNotExist
	}
	return info, nil
}

func TestBrokenBackendHelper(t *testing.T) {
	switch os.Getenv(metaEnv) {
	case "":
		t.Skip("run by TestSuiteRejectsBrokenBackends")
	case "overmatch":
		storagetest.Run(t, storagetest.Backend{LockTTL: ttl, New: func(t testing.TB, ns string) certmagic.Storage {
			return overMatching{fileStorage(t, storagetest.SharedDir(t, ns))}
		}})
	case "notfound":
		storagetest.Run(t, storagetest.Backend{
			LockTTL: ttl,
			New: func(t testing.TB, ns string) certmagic.Storage {
				return fileStorage(t, storagetest.SharedDir(t, ns))
			},
			Outage: func(t testing.TB, ns string) (certmagic.Storage, func(), func()) {
				// A symbolic link turned into a loop makes every call fail.
				real, link := storagetest.SharedDir(t, ns), filepath.Join(t.TempDir(), "link")
				point := func(target string) {
					os.Remove(link)
					if err := os.Symlink(target, link); err != nil {
						t.Fatal(err)
					}
				}
				point(real)
				return notFoundOnError{fileStorage(t, link)}, func() { point(link) }, func() { point(real) }
			},
		})
	case "certmagic":
		storagetest.Run(t, storagetest.Backend{LockTTL: 10 * time.Second, New: func(t testing.TB, ns string) certmagic.Storage {
			return &certmagic.FileStorage{Path: storagetest.SharedDir(t, ns)}
		}})
	default:
		t.Fatalf("unknown %s", metaEnv)
	}
}

// TestSuiteRejectsBrokenBackends runs checks of the suite against backends
// with the bugs the suite exists to catch, in another process, and expects
// them to fail with a message that names the bug.
func TestSuiteRejectsBrokenBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts test processes")
	}
	tests := []struct {
		backend, run, want string
	}{
		{"overmatch", "Data/ListStatExistsDeleteSemantics", `List("t/d", recursive=false): missing [], unexpected ["t/d.x" "t/d2" "t/dx"]`},
		{"notfound", "Outage", "an outage must never look like a missing key"},
		{"certmagic", "Locks/OddLockNamesNeverCollide", `Lock("lock-wildcard_.example.com") of a free name while holding the other odd names`},
		{"certmagic", "Locks/Expiry/PausedHolderLearnsItLostTheLock", "the old holder's Unlock freed someone else's lock"},
	}
	for _, tt := range tests {
		t.Run(tt.backend+"/"+tt.run, func(t *testing.T) {
			pattern := "^TestBrokenBackendHelper$"
			for _, p := range strings.Split(tt.run, "/") {
				pattern += "/^" + p + "$"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), metaEnv+"="+tt.backend)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed a backend with a bug (%v):\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("the suite failed without naming the bug %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestProxyCutsAndRestores(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // echo server, ends when ln closes
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintln(c, sc.Text())
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	p := storagetest.NewProxy(t, ln.Addr().String())

	echo := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(c, msg); err != nil {
			return err
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if got != msg+"\n" {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	dialEcho := func(msg string) error {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			return err
		}
		defer c.Close()
		return echo(c, msg)
	}

	live, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := echo(live, "before"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := echo(live, "during"); err == nil {
		t.Error("a connection open before Cut still works")
	}
	if err := dialEcho("during"); err == nil {
		t.Error("a connection made after Cut works")
	}
	p.Restore()
	if err := dialEcho("after"); err != nil {
		t.Errorf("a connection made after Restore: %v", err)
	}
}
