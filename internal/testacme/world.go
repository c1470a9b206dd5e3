package testacme

import (
	"cmp"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options configures a World. The zero value gives one zone, example.test,
// and a Pebble CA that neither rejects nonces nor requires account binding.
type Options struct {
	// Zones are the DNS zones served, with or without trailing dot.
	// Default: example.test.
	Zones []string

	// CertValidity is the validity of issued certificates, in whole seconds.
	// Default (0): Pebble's default of 90 days.
	CertValidity time.Duration

	// BadNoncePercent is the share of valid nonces Pebble rejects as bad,
	// 0 to 100 (100 rejects every nonce), to exercise client retries.
	// Default: 0.
	BadNoncePercent int

	// EABKeys maps External Account Binding key IDs to their HMAC keys,
	// base64url-encoded without padding. When non-empty, new accounts must
	// be bound to one of them.
	EABKeys map[string]string

	// ReuseAuthorizations makes Pebble reuse a valid authorization of the
	// same account for an identifier in a new order, as Let's Encrypt does.
	// Default (false): every order gets new authorizations, so a renewal
	// always presents a challenge. (Pebble cannot be told never to reuse:
	// it still does for about 1 identifier in 100 when a valid
	// authorization exists; the world hides from it the authorizations of
	// orders that are done before each new order.)
	ReuseAuthorizations bool

	// Intermediates is the number of intermediate certificates between the
	// root and issued certificates. Default (0): 1.
	Intermediates int

	// ARIRetryAfter is how long the CA tells clients to wait before asking
	// again for a certificate's renewal information (ARI), in whole
	// seconds. Default (0): Pebble's 6 hours.
	ARIRetryAfter time.Duration

	// VAResolver is the ip:port of the DNS server that Pebble's validation
	// asks for challenge records (over TCP, recursion desired), in place of
	// the world's own DNS server: a recursive server in front of another
	// authoritative server (internal/testacme/bind), which chases a CNAME
	// at _acme-challenge the way a CA's resolver does. Default: the world's
	// DNS server.
	VAResolver string

	// DNSAddr is the ip:port the world's DNS server listens on (UDP and
	// TCP). Default: 127.0.0.1 on a free port. A fixed port lets the
	// world's nameservers share one port number with nameservers started
	// elsewhere on other loopback addresses, as nameservers share port 53.
	DNSAddr string

	// Logger receives Pebble's logs. Default: discarded.
	Logger *log.Logger
}

// World is a running test world: a Pebble ACME CA served over HTTPS on
// loopback, whose DNS-01 validations query an authoritative DNS server for
// the world's zones, and a libdns Provider that writes into those zones.
//
// Close stops it. One goroutine per World remains afterwards: Pebble's VA
// starts a task loop that nothing can stop (va.New in Pebble v2.10.3). Any
// number of worlds may run in one process at once.
type World struct {
	zones    *Zones
	dns      *DNSServer
	provider *Provider

	db      *db.MemoryStore
	wfe     http.Handler
	srv     *httptest.Server
	roots   *x509.CertPool
	acmeCAs *x509.CertPool

	ariRetryAfter time.Duration

	// wfeMu serializes requests into Pebble's WFE, which can deadlock under
	// concurrent clients (its authz and store locks are taken in both
	// orders), and guards the records.
	wfeMu       sync.Mutex
	orders      []Order
	refuse      bool              // new orders are refused (RefuseNewOrders)
	limitUntil  time.Time         // new orders are rate-limited until then (RateLimitNewOrders)
	newOrders   []NewOrderRequest // every new-order request
	authzIDs    map[string]struct{}
	reuse       bool                // Options.ReuseAuthorizations
	reusable    map[string]struct{} // authorizations not yet hidden from reuse
	ariRequests []RenewalInfoRequest

	mu     sync.Mutex // guards extra and closed
	extra  []*DNSServer
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Counts are the ACME objects a World's CA has created.
type Counts struct {
	// Orders is the number of orders created (successful new-order requests).
	Orders int
	// Authorizations is the number of distinct authorizations in those orders.
	Authorizations int
	// Certificates is the number of those orders for which a certificate
	// has been issued.
	Certificates int
}

// envMu serializes the construction of Pebble's VA and WFE, which read their
// settings from process-wide environment variables.
var envMu sync.Mutex

// New starts a World. Close stops it.
func New(opts Options) (*World, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	zoneNames := opts.Zones
	if len(zoneNames) == 0 {
		zoneNames = []string{"example.test"}
	}
	logger := opts.Logger
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}

	w := &World{zones: NewZones(), authzIDs: map[string]struct{}{}, reusable: map[string]struct{}{},
		reuse: opts.ReuseAuthorizations, ariRetryAfter: opts.ARIRetryAfter}
	for i, name := range zoneNames {
		if err := w.zones.AddZone(name); err != nil {
			return nil, fmt.Errorf("testacme: Options.Zones[%d]: %w", i, err)
		}
	}
	w.provider = NewProvider(w.zones)
	dnsSrv, err := NewDNSServer(w.zones, cmp.Or(opts.DNSAddr, "127.0.0.1:0"))
	if err != nil {
		return nil, err
	}
	w.dns = dnsSrv

	intermediates := max(opts.Intermediates, 1)
	profiles := map[string]ca.Profile{"default": {
		Description:    "testacme default profile",
		ValidityPeriod: uint64(opts.CertValidity / time.Second), // 0: Pebble's default
	}}
	w.db = db.NewMemoryStore()
	authority := ca.New(logger, w.db, "", "ecdsa", 0, intermediates, profiles)
	for _, id := range slices.Sorted(maps.Keys(opts.EABKeys)) {
		if err := w.db.AddExternalAccountKeyByID(id, opts.EABKeys[id]); err != nil {
			_ = w.dns.Close()
			// Pebble's error quotes the key; ours must not.
			return nil, fmt.Errorf("testacme: Options.EABKeys[%q]: Pebble rejected the key", id)
		}
	}
	reuse := "0"
	if opts.ReuseAuthorizations {
		reuse = "100"
	}
	w.wfe = withEnv(map[string]string{
		"PEBBLE_VA_NOSLEEP":          "1",
		"PEBBLE_VA_SLEEPTIME":        "",
		"PEBBLE_VA_ALWAYS_VALID":     "",
		"PEBBLE_WFE_NONCEREJECT":     strconv.Itoa(opts.BadNoncePercent),
		"PEBBLE_AUTHZREUSE":          reuse,
		"PEBBLE_WFE_ORDERS_PER_PAGE": "",
	}, func() http.Handler {
		validator := va.New(logger, 0, 0, false, cmp.Or(opts.VAResolver, w.dns.Addr()), w.db)
		front := wfe.New(logger, w.db, validator, authority, []string{"pebble.letsencrypt.org"},
			false, len(opts.EABKeys) > 0, 0, 0)
		return front.Handler()
	})

	// httptest.NewUnstartedServer panics when it cannot listen; listen here
	// to return an error instead.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = w.dns.Close()
		return nil, fmt.Errorf("testacme: listening for the ACME server: %w", err)
	}
	w.srv = &httptest.Server{
		Listener: ln,
		Config:   &http.Server{Handler: http.HandlerFunc(w.serveACME), ErrorLog: logger},
	}
	w.srv.StartTLS()
	w.acmeCAs = x509.NewCertPool()
	w.acmeCAs.AddCert(w.srv.Certificate())
	w.roots = x509.NewCertPool()
	w.roots.AddCert(authority.GetRootCert(0).Cert)
	return w, nil
}

// Start is New for tests: it fails the test if the world cannot start and
// closes the world when the test ends.
func Start(t testing.TB, opts Options) *World {
	t.Helper()
	w, err := New(opts)
	if err != nil {
		t.Fatalf("starting the test world: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("closing the test world: %v", err)
		}
	})
	return w
}

func (o Options) validate() error {
	if o.CertValidity < 0 || (o.CertValidity > 0 && o.CertValidity < time.Second) {
		return fmt.Errorf("testacme: Options.CertValidity %v: want 0 (Pebble's default) or at least 1s", o.CertValidity)
	}
	if o.CertValidity > 100*365*24*time.Hour {
		return fmt.Errorf("testacme: Options.CertValidity %v: want at most 100 years", o.CertValidity)
	}
	if o.ARIRetryAfter < 0 || o.ARIRetryAfter%time.Second != 0 {
		return fmt.Errorf("testacme: Options.ARIRetryAfter %v: want 0 (Pebble's 6 hours) or whole seconds", o.ARIRetryAfter)
	}
	if o.BadNoncePercent < 0 || o.BadNoncePercent > 100 {
		return fmt.Errorf("testacme: Options.BadNoncePercent %d: want 0 to 100", o.BadNoncePercent)
	}
	if o.VAResolver != "" {
		host, _, err := net.SplitHostPort(o.VAResolver)
		if err != nil || net.ParseIP(host) == nil {
			return fmt.Errorf("testacme: Options.VAResolver %q: want ip:port such as 127.0.0.1:5353", o.VAResolver)
		}
	}
	if o.Intermediates < 0 || o.Intermediates > 10 {
		return fmt.Errorf("testacme: Options.Intermediates %d: want 0 (default 1) to 10", o.Intermediates)
	}
	for id, key := range o.EABKeys {
		if id == "" {
			return errors.New("testacme: Options.EABKeys: empty key ID")
		}
		if k, err := base64.RawURLEncoding.DecodeString(key); err != nil || len(k) == 0 {
			return fmt.Errorf("testacme: Options.EABKeys[%q]: the HMAC key must be non-empty base64url without padding", id)
		}
	}
	return nil
}

// withEnv runs fn with the environment variables in env set ("" unsets),
// restoring them afterwards, under envMu.
func withEnv[T any](env map[string]string, fn func() T) T {
	envMu.Lock()
	defer envMu.Unlock()
	for name, value := range env {
		old, had := os.LookupEnv(name)
		if value == "" {
			_ = os.Unsetenv(name)
		} else {
			_ = os.Setenv(name, value)
		}
		defer func() {
			if had {
				_ = os.Setenv(name, old)
			} else {
				_ = os.Unsetenv(name)
			}
		}()
	}
	return fn()
}

// DirectoryURL returns the URL of the ACME directory,
// https://127.0.0.1:port/dir.
func (w *World) DirectoryURL() string { return w.srv.URL + wfe.DirectoryPath }

// ACMERoots returns a pool that trusts the ACME server's HTTPS certificate,
// for the ACME client (certmagic.ACMEIssuer.TrustedRoots).
func (w *World) ACMERoots() *x509.CertPool { return w.acmeCAs }

// ACMERootsPEM is ACMERoots in PEM form, for programs in other processes
// (CERTFLEET_CA_ROOTS).
func (w *World) ACMERootsPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.srv.Certificate().Raw})
}

// Roots returns a pool holding the test CA's root, which verifies the chains
// of the certificates it issues.
func (w *World) Roots() *x509.CertPool { return w.roots }

// DNSAddr returns the "127.0.0.1:port" address of the world's DNS server, over
// UDP and TCP. Pebble validates DNS-01 challenges against it.
func (w *World) DNSAddr() string { return w.dns.Addr() }

// DNS returns the world's DNS server, the one Pebble queries.
func (w *World) DNS() *DNSServer { return w.dns }

// Zones returns the world's DNS data.
func (w *World) Zones() *Zones { return w.zones }

// Provider returns the libdns provider that writes into the world's zones.
func (w *World) Provider() *Provider { return w.provider }

// StartDNSServer starts another authoritative server for the world's zones
// on addr (see NewDNSServer), stopped by Close.
func (w *World) StartDNSServer(addr string) (*DNSServer, error) {
	return w.startServer(w.zones, addr)
}

// startServer starts a server for zones on addr, stopped by Close.
func (w *World) startServer(zones *Zones, addr string) (*DNSServer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("testacme: starting a DNS server: the world is closed")
	}
	s, err := NewDNSServer(zones, addr)
	if err != nil {
		return nil, err
	}
	w.extra = append(w.extra, s)
	return s, nil
}

// Counts returns how many orders, authorizations and certificates the CA
// has created so far.
func (w *World) Counts() Counts {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	c := Counts{Orders: len(w.orders), Authorizations: len(w.authzIDs)}
	for _, o := range w.orders {
		if w.issued(o.ID) {
			c.Certificates++
		}
	}
	return c
}

// issued reports whether the CA has issued the certificate of order id.
// Called with wfeMu held, like every other use of Pebble's store.
func (w *World) issued(id string) (ok bool) {
	defer func() {
		if recover() != nil { // Pebble panics on an order in an inconsistent state
			ok = false
		}
	}()
	order := w.db.GetOrderByID(id)
	if order == nil {
		return false
	}
	order.RLock()
	defer order.RUnlock()
	return order.CertificateObject != nil
}

// Close stops the ACME server and every DNS server of the world. It is safe
// to call more than once.
func (w *World) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		servers := append([]*DNSServer{w.dns}, w.extra...)
		w.mu.Unlock()

		w.srv.Close()
		var errs []error
		for _, s := range servers {
			if err := s.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}
