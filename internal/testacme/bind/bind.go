// Package bind runs a real BIND 9 name server (named, from Debian's bind9
// package) on loopback for certfleet's tests and the demo: software no one
// here wrote, taking RFC 2136 dynamic updates signed with a TSIG key.
//
//	ns := bind.Start(t, bind.Options{Zones: []string{"example.test", "validation.test"}})
//	p, _ := rfc2136.New(rfc2136.Config{Nameserver: ns.Addr(), TSIGKey: ns.KeyName(), TSIGSecret: ns.Secret()})
//
// The server is authoritative for its zones (each with SOA, NS ns1.<zone>
// and A records pointing at 127.0.0.1), accepts updates and zone transfers
// signed with its generated key, and answers recursive queries from loopback
// by chasing CNAMEs through the zones it serves, as a CA's resolver would:
// point Pebble's validation at it (testacme.Options.VAResolver) and a
// _acme-challenge CNAME into another zone validates. It is also
// authoritative for the root zone (empty), so that no query ever leaves
// loopback.
//
// Start skips the test when named is not installed, unless the environment
// variable CI is "true": there a missing named fails the test.
package bind

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/wait"
)

// ErrNotInstalled is returned (wrapped) by New when no named binary is found.
var ErrNotInstalled = errors.New("BIND 9's named is not installed (Debian: apt-get install bind9)")

// Options configures a Server.
type Options struct {
	// Zones are the zones served, with or without trailing dot. Default:
	// example.test.
	Zones []string

	// Records are extra records in zone-file syntax with absolute owner
	// names, each added to the zone that holds it, such as
	// "_acme-challenge.example.test. 60 IN CNAME example.test.validation.test.".
	Records []string

	// KeyName is the name of the TSIG key allowed to update and transfer
	// every zone. Default: certfleet.
	KeyName string

	// Algorithm is the key's algorithm. Default: hmac-sha256.
	Algorithm string

	// TCPListenQueue is named's tcp-listen-queue: how many TCP connections
	// may wait to be accepted. Default: 64. BIND's own default, 10, makes
	// the kernel drop connection requests when 20 validations or updates
	// arrive at once, each costing a one-second SYN retransmission; Pebble's
	// validation asks over TCP only, where a real CA's resolver asks over
	// UDP. Set 10 to run as a stock BIND does.
	TCPListenQueue int

	// Forward maps zones that named does not serve to the address of a
	// nameserver that does: recursive queries for names in them are
	// forwarded there (and only there), so that named is the one resolver
	// that a CA's validation asks for the zones of several nameservers.
	// An address is ip:port, or an IP alone for named's own port: then
	// named picks a port free on that IP too, and the other nameserver
	// shares named's port number on its own loopback address, as the
	// nameservers of the internet share port 53. (named itself listens on
	// 127.0.0.1 only: it serves the addresses of network interfaces, and
	// other 127.x addresses are not on one.)
	Forward map[string]string

	// NoCache keeps named from caching what it resolves for more than a
	// second (BIND's floor): as the resolver of a CA's validation, it then
	// sees each challenge record set as it is now, not as it was when an
	// earlier validation of another name in the zone asked.
	NoCache bool

	// Dir holds named's configuration, zones, journals and pid file.
	// Default: a new temporary directory that Close removes.
	Dir string

	// Named is the path of the named binary. Default: named on PATH, else
	// /usr/sbin/named.
	Named string
}

// Named returns the path of the named binary: named on PATH, else
// /usr/sbin/named (Debian does not put /usr/sbin on every user's PATH).
func Named() (string, error) {
	if p, err := exec.LookPath("named"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/named"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", ErrNotInstalled
}

// Server is a running named. Close stops it.
type Server struct {
	addr      string
	dir       string
	ownDir    bool
	keyName   string
	algorithm string
	secret    string
	zones     []string
	queue     int
	forward   map[string]netip.AddrPort // port 0: named's own
	noCache   bool

	cmd  *exec.Cmd
	done chan struct{} // closed when named has exited
	log  *syncbuf.Buffer

	closeOnce sync.Once
	closeErr  error
}

// Start is New for tests: it skips the test when named is not installed
// (fails it when CI is "true"), fails it when named does not start, and
// stops named when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Named == "" {
		Require(t)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("starting BIND: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("stopping BIND: %v", err)
		}
	})
	return s
}

// Require skips the test when named is not installed, or fails it when the
// environment variable CI is "true", where every test must run.
func Require(t testing.TB) {
	t.Helper()
	if _, err := Named(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI is true, so this test must run: install bind9 first", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// New starts named on a free loopback port (the same for UDP and TCP) and
// returns once it answers for its zones. Close stops it.
func New(opts Options) (*Server, error) {
	named := opts.Named
	if named == "" {
		var err error
		if named, err = Named(); err != nil {
			return nil, fmt.Errorf("bind: %w", err)
		}
	}
	s := &Server{
		keyName:   cmp.Or(opts.KeyName, "certfleet"),
		algorithm: cmp.Or(opts.Algorithm, "hmac-sha256"),
		dir:       opts.Dir,
		queue:     cmp.Or(opts.TCPListenQueue, 64),
		forward:   map[string]netip.AddrPort{},
		noCache:   opts.NoCache,
	}
	for _, z := range cmpOrSlice(opts.Zones, []string{"example.test"}) {
		z = strings.ToLower(strings.TrimSuffix(z, "."))
		if _, ok := dns.IsDomainName(z); !ok || z == "" {
			return nil, fmt.Errorf("bind: Options.Zones: %q is not a zone name", z)
		}
		s.zones = append(s.zones, z)
	}
	for z, addr := range opts.Forward {
		name := strings.ToLower(strings.TrimSuffix(z, "."))
		if _, ok := dns.IsDomainName(name); !ok || name == "" || slices.Contains(s.zones, name) {
			return nil, fmt.Errorf("bind: Options.Forward: %q is not a zone name, or a zone served here", z)
		}
		ap, err := netip.ParseAddrPort(addr)
		if ip, ipErr := netip.ParseAddr(addr); ipErr == nil && ip.Is4() && ip.IsLoopback() && ip != netip.MustParseAddr("127.0.0.1") {
			ap, err = netip.AddrPortFrom(ip, 0), nil
		}
		if err != nil || ap.Addr().Is4In6() || !ap.Addr().Is4() {
			return nil, fmt.Errorf("bind: Options.Forward[%q]: %q: want ip:port such as 127.0.0.1:5353, or a loopback IP other than 127.0.0.1 for named's port", z, addr)
		}
		s.forward[name] = ap
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s.secret = base64.StdEncoding.EncodeToString(secret)
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "certfleet-bind-")
		if err != nil {
			return nil, fmt.Errorf("bind: %w", err)
		}
		s.dir, s.ownDir = dir, true
	}
	if err := s.writeZones(opts.Records); err != nil {
		s.removeDir()
		return nil, err
	}
	// Another process may take the free port before named binds it: then
	// try another (a fixed port is tried once).
	var err error
	for range 3 {
		if err = s.start(named); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		s.removeDir()
		return nil, err
	}
	return s, nil
}

var errPortTaken = errors.New("the port was taken")

// start writes named.conf for a free port, starts named and waits until it
// answers.
func (s *Server) start(named string) error {
	ips := []string{"127.0.0.1"}
	for _, ap := range s.forward {
		if ap.Port() == 0 {
			ips = append(ips, ap.Addr().String())
		}
	}
	port, err := freePort(ips)
	if err != nil {
		return fmt.Errorf("bind: finding a free port: %w", err)
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(s.dir, "named.conf")
	if err := os.WriteFile(conf, []byte(s.config(port)), 0o600); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	s.log = &syncbuf.Buffer{}
	// -g: foreground, logs to stderr; -n 1: one worker thread, enough here
	// and kind to a shared machine.
	s.cmd = exec.Command(named, "-g", "-n", "1", "-c", conf)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// named dies with the process that started it, should that one die
	// without Close.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("bind: starting %s: %w", named, err)
	}
	s.done = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	var failure error
	ready := wait.Until(30*time.Second, func() bool {
		select {
		case <-s.done:
			failure = fmt.Errorf("bind: named exited while starting:\n%s", s.tail())
			return true
		default:
		}
		if log := s.log.String(); strings.Contains(log, "address in use") || strings.Contains(log, "could not listen") {
			failure = errPortTaken
			return true
		}
		return s.answers()
	})
	if !ready {
		failure = fmt.Errorf("bind: named did not answer on %s within 30s:\n%s", s.addr, s.tail())
	}
	if failure != nil {
		s.stop()
		return failure
	}
	return nil
}

// answers reports whether named serves the first zone, over UDP and TCP.
func (s *Server) answers() bool {
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(s.zones[0]), dns.TypeSOA)
		m.RecursionDesired = false
		c := &dns.Client{Net: network, Timeout: time.Second}
		r, _, err := c.Exchange(m, s.addr)
		if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) == 0 {
			return false
		}
	}
	return true
}

// freePort returns a port that was free for both UDP and TCP on each of
// ips.
func freePort(ips []string) (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if free(ips, port) {
			_ = ln.Close()
			return port, nil
		}
		_ = ln.Close()
	}
	return 0, errors.New("no port free for both UDP and TCP")
}

// free reports whether port was free for UDP on each of ips, and for TCP on
// each but the first (which the caller holds).
func free(ips []string, port int) bool {
	for i, ip := range ips {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		_ = pc.Close()
		if i > 0 {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return false
			}
			_ = ln.Close()
		}
	}
	return true
}

// config is named.conf for port.
func (s *Server) config(port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", s.keyName, s.algorithm, s.secret)
	fmt.Fprintf(&b, `options {
	directory %[1]q;
	pid-file %[2]q;
	session-keyfile %[3]q;
	managed-keys-directory %[1]q;
	listen-on port %[4]d { 127.0.0.1; };
	listen-on-v6 { none; };
	// Recursion for loopback only, to chase CNAMEs through the zones served
	// here as a CA's resolver does; the local root zone keeps every query
	// on this machine.
	recursion yes;
	allow-recursion { 127.0.0.0/8; };
	allow-query { any; };
	dnssec-validation no;
	notify no;
	max-cache-size 8m;
	tcp-listen-queue %[5]d;
%[6]s};
controls { };
zone "." { type primary; file "root.db"; };
`, s.dir, filepath.Join(s.dir, "named.pid"), filepath.Join(s.dir, "session.key"), port, s.queue, s.cacheOptions())

	// A forward zone takes effect only below a delegation: root.db
	// delegates each forwarded zone, and the forwarders answer for it.
	for _, z := range slices.Sorted(maps.Keys(s.forward)) {
		ap := s.forward[z]
		fmt.Fprintf(&b, "zone %q {\n\ttype forward;\n\tforward only;\n\tforwarders { %s port %d; };\n};\n", z, ap.Addr(), cmp.Or(int(ap.Port()), port))
	}
	for _, z := range s.zones {
		fmt.Fprintf(&b, "zone %q {\n\ttype primary;\n\tfile %q;\n\tallow-update { key %q; };\n\tallow-transfer { key %q; };\n};\n",
			z, z+".db", s.keyName, s.keyName)
	}
	return b.String()
}

// cacheOptions returns the options lines that keep named from caching,
// under Options.NoCache.
func (s *Server) cacheOptions() string {
	if !s.noCache {
		return ""
	}
	return "\tmax-cache-ttl 0;\n\tmax-ncache-ttl 0;\n"
}

// writeZones writes the zone files, with records added to their zones.
func (s *Server) writeZones(records []string) error {
	files := map[string]*strings.Builder{}
	for _, z := range s.zones {
		b := &strings.Builder{}
		fmt.Fprintf(b, "$TTL 60\n@ IN SOA ns1.%[1]s. hostmaster.%[1]s. 1 60 60 600 60\n@ IN NS ns1.%[1]s.\nns1 IN A 127.0.0.1\n@ IN A 127.0.0.1\n", z)
		files[z] = b
	}
	byLength := slices.Clone(s.zones)
	slices.SortFunc(byLength, func(a, b string) int { return len(b) - len(a) })
	for i, rec := range records {
		rr, err := dns.NewRR(rec)
		if err != nil || rr == nil {
			return fmt.Errorf("bind: Options.Records[%d] %q: not a record in zone-file syntax: %v", i, rec, err)
		}
		name := strings.ToLower(rr.Header().Name)
		zone := ""
		for _, z := range byLength {
			if dns.IsSubDomain(z+".", name) {
				zone = z
				break
			}
		}
		if zone == "" {
			return fmt.Errorf("bind: Options.Records[%d]: %s is in none of the zones %v", i, name, s.zones)
		}
		fmt.Fprintln(files[zone], rr.String())
	}
	files["root"] = &strings.Builder{}
	files["root"].WriteString("$TTL 60\n@ IN SOA ns. hostmaster.invalid. 1 60 60 600 60\n@ IN NS ns.\nns. IN A 127.0.0.1\n")
	for _, z := range slices.Sorted(maps.Keys(s.forward)) {
		fmt.Fprintf(files["root"], "%[1]s. IN NS ns1.%[1]s.\nns1.%[1]s. IN A %[2]s\n", z, s.forward[z].Addr())
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name+".db"), []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
	}
	return nil
}

// Addr returns named's address, 127.0.0.1:port (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Dir returns the directory of named's configuration, zones and pid file.
func (s *Server) Dir() string { return s.dir }

// Port returns named's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// KeyName returns the name of the TSIG key that may update the zones.
func (s *Server) KeyName() string { return s.keyName }

// Algorithm returns the key's algorithm, such as hmac-sha256.
func (s *Server) Algorithm() string { return s.algorithm }

// Secret returns the key's secret, base64-encoded.
func (s *Server) Secret() string { return s.secret }

// Zones returns the zones served, without trailing dots.
func (s *Server) Zones() []string { return slices.Clone(s.zones) }

// Log returns what named has logged so far.
func (s *Server) Log() string { return s.log.String() }

// tail returns the last lines named logged, for errors.
func (s *Server) tail() string {
	lines := strings.Split(strings.TrimSpace(s.log.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// TXT returns the values of the TXT records at name, as named serves them
// authoritatively (no recursion: a CNAME is not followed).
func (s *Server) TXT(ctx context.Context, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).ExchangeContext(ctx, m, s.addr)
	if err != nil {
		return nil, fmt.Errorf("bind: TXT %s: %w", name, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("bind: TXT %s: %s", name, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// Records returns every record of zone, by a zone transfer signed with the
// key (the closing SOA left out).
func (s *Server) Records(ctx context.Context, zone string) ([]dns.RR, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("bind: AXFR %s: %w", zone, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	key := dns.Fqdn(s.keyName)
	t := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, TsigSecret: map[string]string{key: s.secret}}
	q := new(dns.Msg)
	q.SetAxfr(dns.Fqdn(zone))
	q.SetTsig(key, dns.Fqdn(s.algorithm), 300, time.Now().Unix())
	envelopes, err := t.In(q, s.addr)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("bind: AXFR %s: %w", zone, err)
	}
	var out []dns.RR
	var failed error
	for e := range envelopes {
		if e.Error != nil && failed == nil {
			failed = fmt.Errorf("bind: AXFR %s: %w", zone, e.Error)
		}
		out = append(out, e.RR...)
	}
	if failed != nil {
		return nil, failed
	}
	if len(out) > 1 && out[len(out)-1].Header().Rrtype == dns.TypeSOA {
		out = out[:len(out)-1]
	}
	return out, nil
}

// TXTRecords returns every TXT record in the zones, as "name value" lines,
// read by zone transfers. The zones hold none of their own: any TXT record
// is one a test or the demo wrote.
func (s *Server) TXTRecords(ctx context.Context) ([]string, error) {
	var out []string
	for _, z := range s.zones {
		rrs, err := s.Records(ctx, z)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			if t, ok := rr.(*dns.TXT); ok {
				out = append(out, rr.Header().Name+" "+strings.Join(t.Txt, ""))
			}
		}
	}
	return out, nil
}

// stop ends named: SIGTERM, then SIGKILL if it has not exited after 10 s.
func (s *Server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Close stops named and removes its directory if New created it.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.removeDir()
	})
	return s.closeErr
}

func (s *Server) removeDir() {
	if s.ownDir {
		if err := os.RemoveAll(s.dir); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("bind: removing %s: %w", s.dir, err)
		}
	}
}

func cmpOrSlice(v, def []string) []string {
	if len(v) == 0 {
		return def
	}
	return v
}
