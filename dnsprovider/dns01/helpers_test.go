package dns01

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/testacme"
)

// solverWorld is a test world and the settings a Solver needs to use it.
type solverWorld struct {
	*testacme.World
	port    int // the DNS server's port, the nameservers' port
	storage *certmagic.FileStorage
}

func newSolverWorld(t *testing.T, zones ...string) *solverWorld {
	t.Helper()
	w := testacme.Start(t, testacme.Options{Zones: zones})
	_, p, err := net.SplitHostPort(w.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return &solverWorld{World: w, port: port, storage: &certmagic.FileStorage{Path: t.TempDir()}}
}

// config returns a Config for the world with fast retries.
func (w *solverWorld) config(t *testing.T, p dnsprovider.Provider) Config {
	t.Helper()
	if p == nil {
		p = w.Provider()
	}
	return Config{
		DNS:                p,
		Storage:            w.storage,
		Resolvers:          []string{w.DNSAddr()},
		NameserverPort:     w.port,
		PropagationTimeout: 30 * time.Second,
		Retry:              dnsprovider.RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		Logger:             slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func newTestSolver(t *testing.T, cfg Config) *Solver {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// secondNameserver makes ns1 (127.0.0.1) and ns2 (127.0.0.2) the
// nameservers of zone and starts ns2 on the world's port.
func (w *solverWorld) secondNameserver(t *testing.T, zone string) *testacme.DNSServer {
	t.Helper()
	ns2, err := w.StartDNSServer("127.0.0.2:" + strconv.Itoa(w.port))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Zones().SetNameServers(zone,
		testacme.NameServer{Host: "ns1." + zone, Addr: netip.MustParseAddr("127.0.0.1")},
		testacme.NameServer{Host: "ns2." + zone, Addr: netip.MustParseAddr("127.0.0.2")},
	); err != nil {
		t.Fatal(err)
	}
	return ns2
}

// challenge returns a dns-01 challenge for the identifier name.
func challenge(name, token string) acme.Challenge {
	return acme.Challenge{
		Type:             acme.ChallengeTypeDNS01,
		Token:            token,
		KeyAuthorization: token + ".thumbprint",
		Identifier:       acme.Identifier{Type: "dns", Value: name},
	}
}

// journal returns the journal keys in the world's storage.
func (w *solverWorld) journal(t *testing.T) []string {
	t.Helper()
	keys, err := w.storage.List(context.Background(), "dns01/journal", false)
	if err != nil && !strings.Contains(err.Error(), "no such file") {
		t.Fatal(err)
	}
	return keys
}

// challengeTXT returns the TXT values of zone's records, by absolute name.
func (w *solverWorld) challengeTXT(t *testing.T, zone string) map[string][]string {
	t.Helper()
	rrs, err := w.Zones().Records(zone)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, rr := range rrs {
		if rr.Type == "TXT" {
			name := libdns.AbsoluteName(rr.Name, canonicalFQDN(zone))
			out[name] = append(out[name], rr.Data)
		}
	}
	return out
}

// testLog sends log lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// hookProvider calls a hook before each write of the provider it wraps.
type hookProvider struct {
	*testacme.Provider
	mu       sync.Mutex
	onAppend func(ctx context.Context, zone string, recs []libdns.Record) error
	onDelete func(ctx context.Context, zone string, recs []libdns.Record) error
}

func (h *hookProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	h.mu.Lock()
	hook := h.onAppend
	h.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, zone, recs); err != nil {
			return nil, err
		}
	}
	return h.Provider.AppendRecords(ctx, zone, recs)
}

func (h *hookProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	h.mu.Lock()
	hook := h.onDelete
	h.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, zone, recs); err != nil {
			return nil, err
		}
	}
	return h.Provider.DeleteRecords(ctx, zone, recs)
}
