package fleettest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
)

// Env is the world fleet members reach over loopback: the test world's ACME
// CA, and its DNS zones through a fake of the Route 53 API.
type Env struct {
	World   *testacme.World  // the ACME CA, DNS server and zones
	Route53 *apifake.Route53 // the Route 53 API the members' provider writes through

	rootsFile string
	env       []string // the AWS settings members need, besides the process environment
}

// NewEnv starts a test world and a Route 53 fake writing into its zones,
// both stopped when the test ends.
func NewEnv(t testing.TB, opts testacme.Options) *Env {
	t.Helper()
	w := testacme.Start(t, opts)
	r53 := apifake.NewRoute53(w.Provider())
	t.Cleanup(r53.Close)
	r53.SetPendingPolls(0)
	dir := t.TempDir()
	roots := filepath.Join(dir, "acme-roots.pem")
	if err := os.WriteFile(roots, w.ACMERootsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Env{
		World:     w,
		Route53:   r53,
		rootsFile: roots,
		env: []string{
			"AWS_ENDPOINT_URL_ROUTE_53=" + r53.URL(),
			"AWS_ENDPOINT_URL=",
			"AWS_REGION=us-east-1",
			"AWS_ACCESS_KEY_ID=AKIAFLEETTESTEXAMPLE",
			"AWS_SECRET_ACCESS_KEY=fleettest-not-a-secret",
			"AWS_SESSION_TOKEN=",
			"AWS_PROFILE=",
			"AWS_CONFIG_FILE=" + filepath.Join(dir, "aws-config"),
			"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "aws-credentials"),
			"AWS_EC2_METADATA_DISABLED=true",
		},
	}
}

// Spec returns the spec of a member managing domains in storage: the
// world's CA, the route53 provider, the world's DNS server as resolver and
// as the zones' authoritative nameserver, whose port the propagation check
// (the default policy: every authoritative nameserver) queries.
func (e *Env) Spec(storageURL string, domains ...string) MemberSpec {
	_, port, _ := net.SplitHostPort(e.World.DNSAddr())
	dnsPort, _ := strconv.Atoi(port)
	return MemberSpec{
		Domains:     domains,
		Email:       "ops@example.test",
		CA:          e.World.DirectoryURL(),
		CARootsFile: e.rootsFile,
		Storage:     storageURL,
		DNSProvider: "route53",
		Resolvers:   []string{e.World.DNSAddr()},
		DNSPort:     dnsPort,
	}
}

// Member is a member process seen from the test.
type Member struct {
	ID   int        // its number, for messages
	Spec MemberSpec // what it runs

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncbuf.Buffer
	exited chan struct{}
	err    error // from Wait; read after exited is closed

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{} // closed and replaced when a message arrives
	addr    string
}

// StartMember starts a member process playing spec and waits until it has
// created its Manager (KindCreated); it then waits for Start. The process is
// told to exit (then killed) when the test ends.
func (e *Env) StartMember(t testing.TB, id int, spec MemberSpec) *Member {
	t.Helper()
	m := e.launch(t, id, spec)
	m.awaitCreated(t)
	return m
}

// StartMembers starts n members playing spec, with IDs 0 to n-1, and waits
// until each has created its Manager.
func (e *Env) StartMembers(t testing.TB, n int, spec MemberSpec) []*Member {
	t.Helper()
	ms := make([]*Member, n)
	for i := range ms {
		ms[i] = e.launch(t, i, spec)
	}
	for _, m := range ms {
		m.awaitCreated(t)
	}
	return ms
}

func (e *Env) launch(t testing.TB, id int, spec MemberSpec) *Member {
	t.Helper()
	enc, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("fleettest: encoding member spec: %v", err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), e.env...), envSpec+"="+string(enc))
	m := &Member{ID: id, Spec: spec, cmd: cmd, stderr: &syncbuf.Buffer{}, exited: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stderr = m.stderr
	setDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("fleettest: member stdout: %v", err)
	}
	if m.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatalf("fleettest: member stdin: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("fleettest: starting member process: %v", err)
	}
	readDone := make(chan struct{})
	go func() { // ends when the process closes its stdout, at exit at the latest
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var msg Message
			if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
				msg = Message{Kind: KindError, Err: "unreadable message: " + sc.Text()}
			}
			m.add(msg)
		}
	}()
	go func() { // ends when the process does; the cleanup ends the process
		<-readDone // Wait closes stdout: read everything first
		m.err = cmd.Wait()
		close(m.exited)
		m.add(Message{}) // wake waiters
	}()
	t.Cleanup(func() {
		_ = m.stdin.Close()
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-m.exited
		}
		if t.Failed() {
			t.Logf("fleettest: member %d (pid %d) logs:\n%s", m.ID, cmd.Process.Pid, m.stderr.String())
		}
	})
	return m
}

func (m *Member) add(msg Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg.Kind != "" {
		m.msgs = append(m.msgs, msg)
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Member) awaitCreated(t testing.TB) {
	t.Helper()
	msg := m.Await(t, time.Minute, func(msg Message) bool { return msg.Kind == KindCreated })
	m.mu.Lock()
	m.addr = msg.Addr
	m.mu.Unlock()
}

// Addr returns the member's TLS address, 127.0.0.1:port.
func (m *Member) Addr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

// PID returns the member's process id.
func (m *Member) PID() int { return m.cmd.Process.Pid }

// Messages returns every message the member has sent so far.
func (m *Member) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

// Find returns the first message so far that match accepts.
func (m *Member) Find(match func(Message) bool) (Message, bool) {
	for _, msg := range m.Messages() {
		if match(msg) {
			return msg, true
		}
	}
	return Message{}, false
}

// Await returns the first message, sent so far or later, that match
// accepts. It fails the test if none arrives within timeout, if the member
// exits first, or if it reports that it cannot run (KindError).
func (m *Member) Await(t testing.TB, timeout time.Duration, match func(Message) bool) Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		msgs, changed := m.msgs, m.changed
		m.mu.Unlock()
		for _, msg := range msgs {
			if msg.Kind == KindError {
				t.Fatalf("fleettest: member %d cannot run: %s\n%s", m.ID, msg.Err, m.stderr.String())
			}
			if match(msg) {
				return msg
			}
		}
		select {
		case <-m.exited:
			t.Fatalf("fleettest: member %d exited (%v) before the awaited message; messages: %v", m.ID, m.err, m.Messages())
		default:
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("fleettest: member %d: no awaited message within %v; messages: %v", m.ID, timeout, m.Messages())
		}
	}
}

// AwaitReady waits until Start has returned nil in the member, failing the
// test if it returned an error.
func (m *Member) AwaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	msg := m.Await(t, timeout, func(msg Message) bool { return msg.Kind == KindReady || msg.Kind == KindStartFailed })
	if msg.Kind == KindStartFailed {
		t.Fatalf("fleettest: member %d: Start: %s", m.ID, msg.Err)
	}
}

// Send writes a command (see RunMember) to the member.
func (m *Member) Send(t testing.TB, cmd string) {
	t.Helper()
	if _, err := io.WriteString(m.stdin, cmd+"\n"); err != nil {
		t.Fatalf("fleettest: writing to member %d: %v", m.ID, err)
	}
}

// Kill kills the member with SIGKILL and waits until it is gone.
func (m *Member) Kill(t testing.TB) {
	t.Helper()
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatalf("fleettest: killing member %d: %v", m.ID, err)
	}
	<-m.exited
}

// Exit tells the member to exit and waits until it has, failing the test if
// it does not within timeout or exits with an error.
func (m *Member) Exit(t testing.TB, timeout time.Duration) {
	t.Helper()
	m.Send(t, "exit")
	select {
	case <-m.exited:
		if m.err != nil {
			t.Fatalf("fleettest: member %d exited with %v:\n%s", m.ID, m.err, m.stderr.String())
		}
	case <-time.After(timeout):
		t.Fatalf("fleettest: member %d still running %v after exit", m.ID, timeout)
	}
}

// Logs returns what the member wrote on its standard error.
func (m *Member) Logs() string { return strings.TrimRight(m.stderr.String(), "\n") }

// StartTogether sends the start signal to every member, one right after the
// other, so that they start at the same instant as near as the machine can.
func StartTogether(t testing.TB, ms ...*Member) {
	t.Helper()
	for _, m := range ms {
		m.Send(t, "start")
	}
}

// Handshake connects to addr with server name sni, verifies the chain
// against roots and the name, and returns the leaf certificate.
func Handshake(addr, sni string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots})
	if err != nil {
		return nil, fmt.Errorf("handshake with %s for %s: %w", addr, sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// ServedSerial returns the serial number, in the form of Message.Serial, of
// the certificate a member serves for a managed name, over a verified TLS
// handshake.
func ServedSerial(m *Member, name string, roots *x509.CertPool) (string, error) {
	leaf, err := Handshake(m.Addr(), SNI(name), roots)
	if err != nil {
		return "", err
	}
	return leaf.SerialNumber.Text(16), nil
}
