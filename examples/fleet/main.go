// Command fleet runs three certfleet members, three processes of this same
// program, that share PostgreSQL storage and serve one name. They start at
// the same instant; one of them orders the certificate and the others load
// it from storage. Then one member renews it, and the others serve the new
// certificate as soon as PostgreSQL tells them (LISTEN/NOTIFY). The program
// prints which member ordered and how quickly the others picked it up.
//
// The ACME CA (Pebble), the authoritative DNS server and a Route 53 API fake
// run in-process on loopback; the members reach them over the network and
// use certfleet's real Route 53 provider. Nothing leaves the machine.
//
//	go run ./examples/fleet
//
// Storage is $CERTFLEET_STORAGE, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable, in a schema
// of its own that is dropped at the end.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
)

const (
	members = 3
	domain  = "fleet.example.test"

	envMember     = "FLEET_EXAMPLE_MEMBER" // set in member processes: the member's number
	defaultDB     = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	memberTimeout = 2 * time.Minute
)

func main() {
	run := run
	if id := os.Getenv(envMember); id != "" {
		run = func(out io.Writer) error { return runMember(id, os.Stdin, out) }
	}
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// report is what a member tells the parent, one JSON line each.
type report struct {
	Kind   string    `json:"kind"` // created, ready, obtained, renewed, serving, error
	Serial string    `json:"serial,omitempty"`
	Addr   string    `json:"addr,omitempty"`
	Err    string    `json:"err,omitempty"`
	Time   time.Time `json:"time"`
}

// run is the parent: it starts the test world and three members, and
// prints what they report.
func run(out io.Writer) error {
	began := time.Now()
	fmt.Fprintf(out, "certfleet fleet example: %d members, one name (%s), PostgreSQL storage\n", members, domain)

	world, err := testacme.New(testacme.Options{Zones: []string{"example.test"}})
	if err != nil {
		return err
	}
	defer world.Close()
	r53 := apifake.NewRoute53(world.Provider())
	defer r53.Close()
	r53.SetPendingPolls(0)
	dir, err := os.MkdirTemp("", "certfleet-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	roots := filepath.Join(dir, "acme-roots.pem")
	if err := os.WriteFile(roots, world.ACMERootsPEM(), 0o600); err != nil {
		return err
	}

	storageURL, dropSchema, err := privateSchema(os.Getenv("CERTFLEET_STORAGE"))
	if err != nil {
		return err
	}
	defer dropSchema()
	fmt.Fprintf(out, "  started the ACME CA, DNS server and Route 53 API fake on loopback (%s)\n", since(began))

	env := append(os.Environ(),
		"CERTFLEET_DOMAINS="+domain,
		"CERTFLEET_EMAIL=ops@example.test",
		"CERTFLEET_CA="+world.DirectoryURL(),
		"CERTFLEET_CA_ROOTS="+roots,
		"CERTFLEET_STORAGE="+storageURL,
		"CERTFLEET_DNS_PROVIDER=route53",
		"CERTFLEET_RESOLVERS="+world.DNSAddr(),
		// The propagation check asks every authoritative nameserver of the
		// zone, which listens on the test DNS server's port instead of 53.
		"CERTFLEET_DNS_PORT="+port(world.DNSAddr()),
		"AWS_ENDPOINT_URL_ROUTE_53="+r53.URL(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIAFLEETEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=fleet-example-not-a-secret",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ms := make([]*child, members)
	for i := range ms {
		if ms[i], err = startChild(self, i+1, env); err != nil {
			return err
		}
		defer ms[i].stop()
	}
	for _, m := range ms {
		if _, err := m.await("created"); err != nil {
			return err
		}
	}

	// Start together: the start signal goes to all three at once.
	start := time.Now()
	for _, m := range ms {
		m.send("start")
	}
	for _, m := range ms {
		if _, err := m.await("ready"); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  all %d members serve %s, %s after the start signal\n", members, domain, since(start))
	orderer, obtained := whoDid(ms, "obtained")
	if orderer == nil {
		return errors.New("no member reports having obtained the certificate")
	}
	fmt.Fprintf(out, "  member %d ordered the certificate (serial %s…), %v after the start signal\n",
		orderer.id, obtained.Serial[:12], obtained.Time.Sub(start).Round(time.Millisecond))
	for _, m := range ms {
		if m != orderer {
			s, err := m.await("serving", obtained.Serial)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "  member %d did not order: it loaded the certificate from storage, serving it %s\n",
				m.id, lag(s.Time, obtained.Time, orderer.id))
		}
	}
	c := world.Counts()
	fmt.Fprintf(out, "  the CA saw %d order(s) and issued %d certificate(s)\n", c.Orders, c.Certificates)

	// One member renews; PostgreSQL notifies the others.
	renewer := ms[0]
	if renewer == orderer {
		renewer = ms[1]
	}
	renewer.send("renew")
	renewed, err := renewer.await("renewed")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  member %d renewed the certificate (serial %s…)\n", renewer.id, renewed.Serial[:12])
	for _, m := range ms {
		if m == renewer {
			continue
		}
		s, err := m.await("serving", renewed.Serial)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  member %d serves the renewed certificate %s (PostgreSQL LISTEN/NOTIFY)\n", m.id, lag(s.Time, renewed.Time, renewer.id))
	}

	for _, m := range ms {
		serial, err := handshake(m.addr, world.Roots())
		if err != nil {
			return fmt.Errorf("member %d: %w", m.id, err)
		}
		if serial != renewed.Serial {
			return fmt.Errorf("member %d serves serial %s, want %s", m.id, serial, renewed.Serial)
		}
	}
	c = world.Counts()
	fmt.Fprintf(out, "  verified TLS handshake with every member: all serve serial %s…; the CA saw %d orders in all\n", renewed.Serial[:12], c.Orders)
	fmt.Fprintf(out, "done in %s\n", since(began))
	return nil
}

// handshake connects to addr for the domain, verifies the chain and returns
// the serial number of the certificate served.
func handshake(addr string, roots *x509.CertPool) (string, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: domain, RootCAs: roots})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

// privateSchema returns the storage URL with a schema of this run's own,
// and a function that drops it.
func privateSchema(raw string) (string, func(), error) {
	if raw == "" {
		raw = defaultDB
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, errors.New("CERTFLEET_STORAGE must be a postgres:// URL for this example")
	}
	b := make([]byte, 4)
	rand.Read(b)
	schema := "certfleet_fleet_" + hex.EncodeToString(b)
	q := u.Query()
	q.Set("certfleet_schema", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, raw); err == nil {
			conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			conn.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// whoDid returns the member that reported kind, and its report.
func whoDid(ms []*child, kind string) (*child, report) {
	for _, m := range ms {
		if r, ok := m.find(kind, ""); ok {
			return m, r
		}
	}
	return nil, report{}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// lag says how long after the report at a (another member's, of the
// certificate it stored) a member reported b. A member can serve a stored
// certificate before the member that stored it reports doing so.
func lag(b, a time.Time, who int) string {
	d := b.Sub(a)
	switch {
	case d < 0:
		return fmt.Sprintf("before member %d reported it", who)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%v after member %d reported it", d.Round(10*time.Microsecond), who)
	}
	return fmt.Sprintf("%v after member %d reported it", d.Round(time.Millisecond), who)
}

// child is a member process seen from the parent.
type child struct {
	id    int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string

	mu      sync.Mutex
	reports []report
	changed chan struct{}
	done    chan struct{}
}

func startChild(self string, id int, env []string) (*child, error) {
	cmd := exec.Command(self)
	cmd.Env = append(env, fmt.Sprintf("%s=%d", envMember, id))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{id: id, cmd: cmd, stdin: stdin, changed: make(chan struct{}), done: make(chan struct{})}
	go func() { // ends when the member exits
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r report
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			c.mu.Lock()
			c.reports = append(c.reports, r)
			if r.Kind == "created" {
				c.addr = r.Addr
			}
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
	}()
	return c, nil
}

func (c *child) send(cmd string) { fmt.Fprintln(c.stdin, cmd) }

// find returns the first report of kind (with serial, if not empty).
func (c *child) find(kind, serial string) (report, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reports {
		if r.Kind == kind && (serial == "" || r.Serial == serial) {
			return r, true
		}
	}
	return report{}, false
}

// await waits for a report of kind (with serial, if given).
func (c *child) await(kind string, serial ...string) (report, error) {
	want := strings.Join(serial, "")
	deadline := time.After(memberTimeout)
	for {
		if r, ok := c.find(kind, want); ok {
			return r, nil
		}
		if r, ok := c.find("error", ""); ok {
			return report{}, fmt.Errorf("member %d: %s", c.id, r.Err)
		}
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-c.done:
			return report{}, fmt.Errorf("member %d exited before reporting %s", c.id, kind)
		case <-deadline:
			return report{}, fmt.Errorf("member %d: no %s report within %v", c.id, kind, memberTimeout)
		}
	}
}

// stop tells the member to exit and waits for it.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
	}
	c.cmd.Wait()
}
