package redis

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/storage/storagetest"
)

// envLogChild makes TestOutagePrintsNothingOnStderr play its child's role.
const envLogChild = "CERTFLEET_TEST_REDIS_LOG_CHILD"

// TestOutagePrintsNothingOnStderr runs a Storage through an outage in a
// child process (go-redis' logger is process-wide and writes to the stderr
// it found at start-up) and checks that go-redis printed nothing there,
// while its reports reached the Storage's Logger.
func TestOutagePrintsNothingOnStderr(t *testing.T) {
	if os.Getenv(envLogChild) != "" {
		outageChild(t)
		return
	}
	testAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutagePrintsNothingOnStderr$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envLogChild+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("the outage printed on stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "go-redis reports routed to the Logger: ") ||
		strings.Contains(stdout.String(), "go-redis reports routed to the Logger: 0\n") {
		t.Errorf("no go-redis report reached the Storage's Logger during the outage:\n%s", stdout.String())
	}
}

// outageChild cuts a Storage's connection and uses it, then says how many
// go-redis reports its Logger received.
func outageChild(t *testing.T) {
	rec := &recorder{}
	p := storagetest.NewProxy(t, plainAddr(t))
	s := newTestStorage(t, func(c *Config) {
		c.Addr = viaProxy(t, p.Addr())
		c.Timeout = 500 * time.Millisecond
		c.Logger = slog.New(rec)
	})
	ctx := testCtx(t)
	if _, err := s.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	for range 3 {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _ = s.Load(octx, "k")
		_ = s.Store(octx, "k", []byte("w"))
		cancel()
	}
	p.Restore()
	fmt.Printf("go-redis reports routed to the Logger: %d\n", rec.count("go-redis: "))
}

// recorder is a slog.Handler that keeps the messages it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// count returns how many messages start with prefix.
func (r *recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}
