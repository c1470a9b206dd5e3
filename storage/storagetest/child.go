package storagetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
)

// childSpec tells a child process which role to play. It travels as JSON in
// the envChild variable.
type childSpec struct {
	Test      string `json:"test"` // t.Name() of the test that called Run
	Role      string `json:"role"` // roleMutex or roleHold
	Namespace string `json:"ns"`
	Name      string `json:"name"`             // lock name
	Cycles    int    `json:"cycles,omitempty"` // roleMutex: Lock/Unlock cycles
	Dir       string `json:"dir,omitempty"`    // roleMutex: the critical section's shared files
}

const (
	// roleMutex: wait for "go", then run Cycles Lock/critical section/Unlock
	// cycles, then say "done".
	roleMutex = "mutex"
	// roleHold: Lock, say "locked <fencing token or ->", wait for "unlock",
	// then try RenewLockLease and Unlock and say how each went.
	roleHold = "hold"
)

func childSpecFromEnv() (childSpec, bool) {
	v := os.Getenv(envChild)
	if v == "" {
		return childSpec{}, false
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		spec.Role = "invalid: " + err.Error()
	}
	return spec, true
}

// runPattern returns a -test.run pattern selecting exactly the test name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// child is a child process seen from the parent. Messages from the child
// arrive on a pipe at its file descriptor 3, one per line; commands go to its
// stdin. The child stops when its stdin closes, and the kernel kills it when
// the parent dies (see setDeathSignal).
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	out    *syncbuf.Buffer
	exited chan struct{}
	err    error // from Wait; read after exited is closed
}

// startChild starts a child process playing spec's role.
func (r *run) startChild(t testing.TB, spec childSpec) *child {
	t.Helper()
	if !processChecks {
		t.Skip("storagetest: checks with child processes and signals need Linux")
	}
	spec.Test = r.test
	enc, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("storagetest: encoding child spec: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(r.test), "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), envChild+"="+string(enc))
	c := &child{cmd: cmd, lines: make(chan string), out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	setDeathSignal(cmd)
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("storagetest: child stdin: %v", err)
	}
	msgR, msgW, err := os.Pipe()
	if err != nil {
		t.Fatalf("storagetest: child message pipe: %v", err)
	}
	cmd.ExtraFiles = []*os.File{msgW}
	if err := cmd.Start(); err != nil {
		msgR.Close()
		msgW.Close()
		t.Fatalf("storagetest: starting child process: %v", err)
	}
	msgW.Close()
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // owned by the cleanup below, which closes stop and msgR
		defer close(readerDone)
		defer close(c.lines)
		sc := bufio.NewScanner(msgR)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			case <-stop:
				return
			}
		}
	}()
	go func() { // ends when the process does; the cleanup kills it
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exited
		}
		close(stop)
		msgR.Close()
		<-readerDone
		if t.Failed() {
			t.Logf("storagetest: output of child process %d (%s):\n%s", cmd.Process.Pid, spec.Role, c.out.String())
		}
	})
	return c
}

// next returns the child's next message. It fails the test if none arrives
// within timeout, if the child exits first, or if the message reports an error.
func (c *child) next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.exited
			t.Fatalf("storagetest: child process %d exited (%v) without a message:\n%s", c.cmd.Process.Pid, c.err, c.out.String())
		}
		if msg, ok := strings.CutPrefix(line, "error "); ok {
			t.Fatalf("storagetest: child process %d: %s", c.cmd.Process.Pid, msg)
		}
		return line
	case <-timer.C:
		t.Fatalf("storagetest: no message from child process %d within %v:\n%s", c.cmd.Process.Pid, timeout, c.out.String())
		return ""
	}
}

// send writes a command to the child.
func (c *child) send(t testing.TB, cmd string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		t.Fatalf("storagetest: writing to child process %d: %v", c.cmd.Process.Pid, err)
	}
}

// kill kills the child with SIGKILL and waits until it is gone.
func (c *child) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatalf("storagetest: killing child process: %v", err)
	}
	<-c.exited
}

// wait waits for the child to exit by itself and fails the test if it
// failed.
func (c *child) wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.exited:
		if c.err != nil {
			t.Fatalf("storagetest: child process %d failed: %v\n%s", c.cmd.Process.Pid, c.err, c.out.String())
		}
	case <-time.After(timeout):
		t.Fatalf("storagetest: child process %d still running after %v", c.cmd.Process.Pid, timeout)
	}
}

// runChild plays a child's role, in the child process.
func runChild(t *testing.T, b Backend, spec childSpec) {
	if spec.Test != t.Name() {
		t.Skipf("storagetest: this process runs a child role of %s", spec.Test)
	}
	msgs := os.NewFile(3, "storagetest-messages")
	if msgs == nil {
		t.Fatal("storagetest: child process has no message pipe at file descriptor 3")
	}
	defer msgs.Close()
	say := func(format string, args ...any) {
		if _, err := fmt.Fprintf(msgs, format+"\n", args...); err != nil {
			t.Fatalf("storagetest: writing to the parent process: %v", err)
		}
	}
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		say("error %s", strings.ReplaceAll(msg, "\n", " "))
		t.Fatal(msg)
	}

	// The parent closes stdin when it is done with the child, or dies:
	// either way the role's context ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmds := make(chan string)
	go func() { // lives as long as the child process, which ends soon after cancel
		defer cancel()
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			select {
			case cmds <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	await := func(want string) {
		select {
		case got := <-cmds:
			if got != want {
				fail("storagetest: child expected command %q, got %q", want, got)
			}
		case <-ctx.Done():
			fail("storagetest: parent process went away")
		}
	}

	if b.New == nil {
		fail("storagetest: Backend.New is nil")
	}
	switch spec.Role {
	case roleMutex:
		s := b.New(t, spec.Namespace)
		say("ready")
		await("go")
		for i := range spec.Cycles {
			if err := s.Lock(ctx, spec.Name); err != nil {
				fail("cycle %d: Lock: %v", i, err)
			}
			if err := criticalSection(ctx, s, spec); err != nil {
				fail("cycle %d: %v", i, err)
			}
			if err := s.Unlock(context.WithoutCancel(ctx), spec.Name); err != nil {
				fail("cycle %d: Unlock of a held lock: %v", i, err)
			}
			// Give the other processes a moment to take the lock, so that
			// acquisitions race instead of one process running all its
			// cycles in a row.
			count := filepath.Join(spec.Dir, "count")
			mine := readCount(count)
			wait.Until(5*time.Millisecond, func() bool { return readCount(count) != mine })
		}
		say("done")
	case roleHold:
		s := b.New(t, spec.Namespace)
		lctx, lcancel := context.WithTimeout(ctx, opTimeout)
		err := s.Lock(lctx, spec.Name)
		lcancel()
		if err != nil {
			fail("Lock of a free name: %v", err)
		}
		token := "-"
		if f, ok := s.(storage.Fencer); ok {
			tok, err := f.FencingToken(ctx, spec.Name)
			switch {
			case errors.Is(err, errors.ErrUnsupported):
			case err != nil:
				fail("FencingToken of a held lock: %v", err)
			default:
				token = strconv.FormatUint(tok, 10)
			}
		}
		say("locked %s", token)
		await("unlock")
		renew := "none"
		if rn, ok := s.(certmagic.LockLeaseRenewer); ok {
			renew = outcome(rn.RenewLockLease(ctx, spec.Name, time.Minute))
		}
		say("renew=%s unlock=%s", renew, outcome(s.Unlock(context.WithoutCancel(ctx), spec.Name)))
	default:
		fail("storagetest: unknown child role %q", spec.Role)
	}
}

// outcome summarizes a lock operation's result for the parent.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, storage.ErrLockLost):
		return "lost"
	default:
		return strconv.Quote(err.Error())
	}
}

// criticalSection runs under the lock in roleMutex children. It fails if
// another process is inside at the same time, counts its entries with an
// unprotected read-modify-write (lost updates show exclusion failures the
// overlap check missed), and checks that fencing tokens strictly grow.
func criticalSection(ctx context.Context, s certmagic.Storage, spec childSpec) error {
	marker := filepath.Join(spec.Dir, "inside")
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return errors.New("mutual exclusion violated: another process is inside the critical section while this one holds the lock")
	}
	if err != nil {
		return err
	}
	f.Close()

	if err := bumpCounter(filepath.Join(spec.Dir, "count"), func(n uint64) (uint64, error) { return n + 1, nil }); err != nil {
		return err
	}
	// Count handoffs between processes, to tell how much the cycles interleaved.
	pid := uint64(os.Getpid())
	var handoff bool
	err = bumpCounter(filepath.Join(spec.Dir, "last"), func(last uint64) (uint64, error) {
		handoff = last != pid
		return pid, nil
	})
	if err != nil {
		return err
	}
	if handoff {
		if err := bumpCounter(filepath.Join(spec.Dir, "handoffs"), func(n uint64) (uint64, error) { return n + 1, nil }); err != nil {
			return err
		}
	}
	if fencer, ok := s.(storage.Fencer); ok {
		tok, err := fencer.FencingToken(ctx, spec.Name)
		if errors.Is(err, errors.ErrUnsupported) {
			return os.Remove(marker)
		}
		if err != nil {
			return fmt.Errorf("FencingToken of a held lock: %w", err)
		}
		err = bumpCounter(filepath.Join(spec.Dir, "token"), func(last uint64) (uint64, error) {
			if tok <= last {
				return 0, fmt.Errorf("fencing token %d is not greater than the previous holder's %d", tok, last)
			}
			return tok, nil
		})
		if err != nil {
			return err
		}
	}
	return os.Remove(marker)
}

// bumpCounter replaces the number in file (0 when missing) with f's result.
func bumpCounter(file string, f func(uint64) (uint64, error)) error {
	var n uint64
	b, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if n, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return fmt.Errorf("counter file %s: %w", file, err)
		}
	}
	if n, err = f(n); err != nil {
		return err
	}
	return os.WriteFile(file, []byte(strconv.FormatUint(n, 10)), 0o600)
}

// readCount returns the number in file, or 0 if it cannot be read.
func readCount(file string) uint64 {
	b, _ := os.ReadFile(file)
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return n
}

// readCounter returns the number in file, 0 when missing.
func readCounter(t testing.TB, file string) uint64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		t.Fatalf("counter file %s: %v", file, err)
	}
	return n
}
