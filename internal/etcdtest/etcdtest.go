// Package etcdtest runs real etcd servers (the etcd binary, e.g. Debian's
// etcd-server package) for tests: one member or a cluster, on free loopback
// ports, each member with its own data directory, stopped when the test ends.
//
// Without the binary the test is skipped with a message, except under CI
// (CI=true), where a missing binary fails the test: CI must test etcd.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/wait"
)

// Environment variables.
const (
	// EnvBinary names the etcd binary; default "etcd" on PATH, then /usr/bin/etcd.
	EnvBinary = "CERTFLEET_ETCD_BINARY"
	// EnvEndpoints, when set, names a running etcd (comma-separated client
	// URLs) that Server returns instead of starting one. Server also sets it
	// for the test's child processes, so that they reach the parent's server.
	EnvEndpoints = "CERTFLEET_TEST_ETCD"
)

// MaxRequestBytes is the request limit the servers started here are given
// (--max-request-bytes): 8 MiB, room for the 4 MiB values of the storage
// conformance suite. etcd's own default is 1.5 MiB.
const MaxRequestBytes = 8 << 20

// startTimeout bounds the wait for a member (or a cluster) to answer.
const startTimeout = 30 * time.Second

// Cluster is a running etcd cluster of one or more members.
type Cluster struct {
	Members []*Member
}

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string // http://127.0.0.1:port
	peerURL   string
	dir       string
	cmd       *exec.Cmd
	out       *syncbuf.Buffer
	exited    chan struct{}
}

// Endpoints returns the members' client URLs, comma-separated.
func (c *Cluster) Endpoints() string {
	urls := make([]string, len(c.Members))
	for i, m := range c.Members {
		urls[i] = m.ClientURL
	}
	return strings.Join(urls, ",")
}

// Server returns the client URLs (comma-separated) of an etcd server for
// the test: the one EnvEndpoints names, or a single member started now,
// whose URLs are then put in EnvEndpoints for child processes. The server
// stops when the test ends.
func Server(t testing.TB) string {
	t.Helper()
	if ep := strings.TrimSpace(os.Getenv(EnvEndpoints)); ep != "" {
		return ep
	}
	c := Start(t, 1)
	ep := c.Endpoints()
	os.Setenv(EnvEndpoints, ep)
	t.Cleanup(func() { os.Unsetenv(EnvEndpoints) })
	return ep
}

// Binary returns the path of the etcd binary, or skips t (fails it under
// CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	if b, ok := Lookup(); ok {
		return b
	}
	msg := "etcd tests need the etcd binary: install it (apt-get install etcd-server) or set " + EnvBinary
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Available reports whether Server can provide a server: EnvEndpoints is
// set, the binary is there, or CI=true (where Server fails without it).
func Available() bool {
	_, ok := Lookup()
	return ok || os.Getenv(EnvEndpoints) != "" || os.Getenv("CI") == "true"
}

// Lookup returns the path of the etcd binary, if there is one.
func Lookup() (string, bool) {
	if b := os.Getenv(EnvBinary); b != "" {
		return b, true
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, true
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", true
	}
	return "", false
}

// Start starts a cluster of n members and waits until it has a leader. It
// stops when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Binary(t)
	c := &Cluster{}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: "http://" + freeAddr(t),
			peerURL:   "http://" + freeAddr(t),
			dir:       filepath.Join(t.TempDir(), "data"),
			out:       &syncbuf.Buffer{},
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.peerURL)
	}
	for _, m := range c.Members {
		m.cmd = exec.Command(bin,
			"--name", m.Name,
			"--data-dir", m.dir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "certfleet-test",
			"--max-request-bytes", fmt.Sprint(MaxRequestBytes),
			"--logger", "zap", "--log-level", "warn",
		)
		m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
		m.cmd.SysProcAttr = sysProcAttr()
		if err := m.cmd.Start(); err != nil {
			t.Fatalf("etcdtest: starting %s: %v", bin, err)
		}
		m.exited = make(chan struct{})
		go func() { // ends with the process, which the cleanup kills
			_ = m.cmd.Wait()
			close(m.exited)
		}()
		t.Cleanup(func() {
			m.Kill()
			if t.Failed() {
				t.Logf("etcdtest: output of etcd member %s:\n%s", m.Name, m.out.String())
			}
		})
	}
	for _, m := range c.Members {
		ok := wait.Until(startTimeout, func() bool { return m.Healthy() || m.Exited() })
		if !ok || m.Exited() {
			t.Fatalf("etcdtest: etcd member %s did not become healthy within %v:\n%s", m.Name, startTimeout, m.out.String())
		}
	}
	return c
}

// Healthy reports whether the member answers its health check (it then
// has a leader).
func (m *Member) Healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf [64]byte
	n, _ := resp.Body.Read(buf[:])
	return resp.StatusCode == http.StatusOK && strings.Contains(string(buf[:n]), `"true"`)
}

// Exited reports whether the member's process has ended.
func (m *Member) Exited() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// Kill kills the member with SIGKILL and waits until it is gone.
func (m *Member) Kill() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
