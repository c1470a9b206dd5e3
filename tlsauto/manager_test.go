package tlsauto_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/internal/leakcheck"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/tlsauto"
)

// testConfig returns a Config obtaining certificates for names from w.
func testConfig(t *testing.T, w *testacme.World, names ...string) tlsauto.Config {
	t.Helper()
	return tlsauto.Config{
		Domains:            names,
		Email:              "ops@example.test",
		CA:                 w.DirectoryURL(),
		CARoots:            w.ACMERoots(),
		DNS:                w.Provider(),
		Storage:            &certmagic.FileStorage{Path: t.TempDir()},
		Resolvers:          []string{w.DNSAddr()},
		PropagationTimeout: -1,
		Logger:             slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startManager(t *testing.T, cfg tlsauto.Config) *tlsauto.Manager {
	t.Helper()
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

// serve runs a TLS server with m's configuration on loopback until the
// test ends.
func serve(t *testing.T, m *tlsauto.Manager) string {
	t.Helper()
	addr, stop := serveUntil(t, m)
	t.Cleanup(stop)
	return addr
}

// serveUntil runs a TLS server with m's configuration on loopback until stop
// is called.
func serveUntil(t *testing.T, m *tlsauto.Manager) (addr string, stop func()) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); <-done }
}

// handshake connects to addr with server name sni, verifies the chain
// against roots, and returns the leaf.
func handshake(t *testing.T, addr, sni string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func mustHandshake(t *testing.T, addr, sni string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	leaf, err := handshake(t, addr, sni, roots)
	if err != nil {
		t.Fatalf("handshake for %s: %v", sni, err)
	}
	return leaf
}

func TestServesVerifiedChainForEachName(t *testing.T) {
	w := testacme.Start(t, testacme.Options{Zones: []string{"example.test", "other.test"}})
	tests := []struct {
		name    string
		domains []string
		sni     []string
	}{
		{"one name", []string{"one.example.test"}, []string{"one.example.test"}},
		{"several names in two zones", []string{"a.example.test", "b.example.test", "other.test"}, []string{"a.example.test", "b.example.test", "other.test"}},
		{"wildcard", []string{"*.other.test"}, []string{"x.other.test", "y.other.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startManager(t, testConfig(t, w, tt.domains...))
			addr := serve(t, m)
			for _, sni := range tt.sni {
				leaf := mustHandshake(t, addr, sni, w.Roots())
				if err := leaf.VerifyHostname(sni); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := handshake(t, addr, "unmanaged.example.test", w.Roots()); err == nil {
				t.Fatal("a handshake for an unmanaged name succeeded")
			}
		})
	}
}

// barrierDNS holds the first TXT write at a name until a second one arrives,
// so that both challenge values are in the zone when the CA validates.
type barrierDNS struct {
	*testacme.Provider
	mu      sync.Mutex
	waiting map[string]chan struct{}
	maxLive map[string]int
	live    map[string]int
}

func (b *barrierDNS) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	out, err := b.Provider.AppendRecords(ctx, zone, recs)
	if err != nil {
		return out, err
	}
	name := recs[0].RR().Name + "." + strings.TrimSuffix(zone, ".")
	b.mu.Lock()
	b.live[name]++
	b.maxLive[name] = max(b.maxLive[name], b.live[name])
	ch, first := b.waiting[name]
	if !first {
		ch = make(chan struct{})
		b.waiting[name] = ch
	} else {
		close(ch)
	}
	b.mu.Unlock()
	if !first {
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			return out, fmt.Errorf("test barrier: no second TXT value at %s", name)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

func (b *barrierDNS) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	b.mu.Lock()
	b.live[recs[0].RR().Name+"."+strings.TrimSuffix(zone, ".")]--
	b.mu.Unlock()
	return b.Provider.DeleteRecords(ctx, zone, recs)
}

func TestApexAndWildcardTogether(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	dns := &barrierDNS{Provider: w.Provider(), waiting: map[string]chan struct{}{}, maxLive: map[string]int{}, live: map[string]int{}}
	cfg := testConfig(t, w, "example.test", "*.example.test")
	cfg.DNS = dns
	m := startManager(t, cfg)
	addr := serve(t, m)
	for _, sni := range []string{"example.test", "www.example.test"} {
		mustHandshake(t, addr, sni, w.Roots())
	}
	dns.mu.Lock()
	defer dns.mu.Unlock()
	if got := dns.maxLive["_acme-challenge.example.test"]; got != 2 {
		t.Fatalf("at most %d TXT values were live at _acme-challenge.example.test, want 2", got)
	}
	if c := w.Counts(); c.Certificates != 2 {
		t.Fatalf("counts = %+v, want 2 certificates", c)
	}
}

func TestRenewsWithoutRestart(t *testing.T) {
	w := testacme.Start(t, testacme.Options{CertValidity: 30 * time.Second})
	cfg := testConfig(t, w, "renew.example.test")
	cfg.RenewalCheckInterval = 250 * time.Millisecond
	cfg.RenewalWindowRatio = 0.5
	var mu sync.Mutex
	var events []tlsauto.Event
	cfg.OnEvent = func(e tlsauto.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	m := startManager(t, cfg)
	addr := serve(t, m)
	first := mustHandshake(t, addr, "renew.example.test", w.Roots())

	var renewed *x509.Certificate
	wait.For(t, time.Minute, "a renewed certificate to be served", func() bool {
		leaf, err := handshake(t, addr, "renew.example.test", w.Roots())
		if err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			renewed = leaf
			return true
		}
		return false
	})
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %v, not after the first's %v", renewed.NotAfter, first.NotAfter)
	}
	mu.Lock()
	kinds := fmt.Sprint(events)
	var sawRenewed bool
	for _, e := range events {
		sawRenewed = sawRenewed || e.Kind == tlsauto.Renewed && e.Name == "renew.example.test"
	}
	mu.Unlock()
	if !sawRenewed {
		t.Fatalf("no Renewed event; events: %s", kinds)
	}
	wait.For(t, 30*time.Second, "challenge TXT records to be removed", func() bool {
		return len(txtRecords(t, w)) == 0
	})
}

func txtRecords(t *testing.T, w *testacme.World) []string {
	t.Helper()
	recs, err := w.Provider().GetRecords(context.Background(), "example.test.")
	if err != nil {
		t.Fatal(err)
	}
	var txt []string
	for _, r := range recs {
		if rr := r.RR(); rr.Type == "TXT" {
			txt = append(txt, rr.Name+"="+rr.Data)
		}
	}
	return txt
}

func TestRestartServesStoredCertificateWithoutOrdering(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	cfg := testConfig(t, w, "restart.example.test", "*.example.test")
	m1 := startManager(t, cfg)
	before := mustHandshake(t, serve(t, m1), "restart.example.test", w.Roots())
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	orders := w.Counts().Orders

	m2 := startManager(t, cfg) // same storage
	after := mustHandshake(t, serve(t, m2), "restart.example.test", w.Roots())
	if got := w.Counts().Orders; got != orders {
		t.Fatalf("restart placed %d new orders, want 0", got-orders)
	}
	if after.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatal("restarted Manager serves a different certificate")
	}
}

func TestObtainsDespiteBadNonces(t *testing.T) {
	w := testacme.Start(t, testacme.Options{BadNoncePercent: 30})
	m := startManager(t, testConfig(t, w, "nonce.example.test", "*.nonce.example.test"))
	addr := serve(t, m)
	mustHandshake(t, addr, "nonce.example.test", w.Roots())
	mustHandshake(t, addr, "x.nonce.example.test", w.Roots())
}

func TestCloseLeavesNothingBehindAndLogsNoSecret(t *testing.T) {
	sentinel := base64.RawURLEncoding.EncodeToString([]byte("SENTINEL-eab-mac-key-0123456789-abcdef"))
	w, err := testacme.New(testacme.Options{EABKeys: map[string]string{"kid-1": sentinel}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	before := leakcheck.Take()

	var logs syncbuf.Buffer
	var events []string
	cfg := testConfig(t, w, "leak.example.test")
	cfg.EAB = &tlsauto.EAB{KeyID: "kid-1", MACKey: sentinel}
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.OnEvent = func(e tlsauto.Event) { events = append(events, fmt.Sprintf("%+v %v", e, e.Err)) }
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, logs.String())
	}
	addr, stop := serveUntil(t, m)
	mustHandshake(t, addr, "leak.example.test", w.Roots())
	stop()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close() // ends the ACME client's idle keep-alive connections
	// certmagic's per-CA rate limiters run for the life of the process.
	before.Check(t, 10*time.Second, "certmagic.(*RingBufferRateLimiter)")

	if logs.String() == "" {
		t.Fatal("nothing was logged")
	}
	for what, s := range map[string]string{"logs": logs.String(), "events": strings.Join(events, "\n"), "config": fmt.Sprintf("%+v %#v", cfg, cfg)} {
		if strings.Contains(s, sentinel) {
			t.Errorf("the EAB MAC key appears in the %s", what)
		}
	}
}

func TestRenewServesNewCertificate(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	m := startManager(t, testConfig(t, w, "forced.example.test"))
	addr := serve(t, m)
	before := mustHandshake(t, addr, "forced.example.test", w.Roots())
	if err := m.Renew(context.Background(), "Forced.Example.Test."); err != nil {
		t.Fatal(err)
	}
	after := mustHandshake(t, addr, "forced.example.test", w.Roots())
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("Renew returned, but the old certificate is still served")
	}
	if err := m.Renew(context.Background(), "other.example.test"); err == nil {
		t.Fatal("Renew accepted a name that is not managed")
	}
}
