package tlsauto_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/tlsauto"
)

// benchTicketManager starts a Manager for name over store with the given
// session ticket mode, serving TLSConfig on loopback until the benchmark
// ends, and returns it with its address.
func benchTicketManager(b *testing.B, w *testacme.World, store storage.Storage, name string, mode tlsauto.TicketMode) (*tlsauto.Manager, string) {
	b.Helper()
	m, err := tlsauto.New(tlsauto.Config{
		Domains:            []string{name},
		Email:              "ops@example.test",
		CA:                 w.DirectoryURL(),
		CARoots:            w.ACMERoots(),
		DNS:                w.Provider(),
		Storage:            store,
		Resolvers:          []string{w.DNSAddr()},
		PropagationTimeout: -1,
		Logger:             slog.New(slog.DiscardHandler),
		SessionTickets:     mode,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m, benchServe(b, m.TLSConfig())
}

// benchServe serves cfg on loopback until the benchmark ends: each
// connection gets its handshake and is closed.
func benchServe(b *testing.B, cfg *tls.Config) string {
	b.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go acceptHandshakes(ln) // ends when the listener closes
	return ln.Addr().String()
}

// BenchmarkResumptionAcrossMembers measures TLS 1.3 connections per second
// from one client, with a session cache, to three Managers sharing storage
// behind a round-robin dialer: each connection lands on the member after
// the one that issued the client's latest ticket. "shared" is three
// Managers keeping session ticket keys in storage (the default), "local"
// three leaving them to crypto/tls. Each iteration makes one connection to
// each fleet, so that both see the same load on a shared machine.
func BenchmarkResumptionAcrossMembers(b *testing.B) {
	w := testacme.Start(b, testacme.Options{})
	store := fileStore(b, b.TempDir())
	const name = "resume.example.test"
	type fleet struct {
		mode    tlsauto.TicketMode
		addrs   []string
		cache   tls.ClientSessionCache
		elapsed time.Duration
		resumed int
	}
	fleets := []*fleet{{mode: tlsauto.TicketsShared}, {mode: tlsauto.TicketsLocal}}
	for _, f := range fleets {
		for range 3 {
			_, addr := benchTicketManager(b, w, store, name, f.mode)
			f.addrs = append(f.addrs, addr)
		}
		f.cache = tls.NewLRUClientSessionCache(8)
	}
	n := 0
	for b.Loop() {
		for _, f := range fleets {
			start := time.Now()
			r, err := fleettest.Resume(f.addrs[n%len(f.addrs)], name, w.Roots(), tls.VersionTLS13, f.cache)
			if err != nil {
				b.Fatal(err)
			}
			f.elapsed += time.Since(start)
			if r {
				f.resumed++
			}
		}
		n++
	}
	for _, f := range fleets {
		b.ReportMetric(float64(n)/f.elapsed.Seconds(), string(f.mode)+"-handshakes/s")
		b.ReportMetric(float64(f.resumed)/float64(n), string(f.mode)+"-resumed/op")
	}
	b.ReportMetric(fleets[1].elapsed.Seconds()/fleets[0].elapsed.Seconds(), "shared/local")
}

// advertiseOnly is a client session cache that never offers a session:
// the client asks for tickets, and the server makes them, but every
// handshake is a full one.
type advertiseOnly struct{}

func (advertiseOnly) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (advertiseOnly) Put(string, *tls.ClientSessionState)        {}

// BenchmarkFullHandshake measures full TLS 1.3 handshakes per second (the
// client asks for tickets, the server issues them) of one certificate
// served by Manager.TLSConfig (shared session tickets), by a static
// tls.Config holding the certificate, and by a plain certmagic Config
// holding it (certmagic's TLSConfig).
func BenchmarkFullHandshake(b *testing.B) {
	w := testacme.Start(b, testacme.Options{})
	const name = "full.example.test"
	m, managed := benchTicketManager(b, w, fileStore(b, b.TempDir()), name, tlsauto.TicketsShared)
	cert, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		b.Fatal(err)
	}

	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zap.NewNop(),
	})
	b.Cleanup(cache.Stop)
	magic = certmagic.New(cache, certmagic.Config{Storage: &certmagic.FileStorage{Path: b.TempDir()}, Logger: zap.NewNop()})
	if _, err := magic.CacheUnmanagedTLSCertificate(context.Background(), *cert, nil); err != nil {
		b.Fatal(err)
	}

	servers := []struct{ name, addr string }{
		{"tlsauto", managed},
		{"static", benchServe(b, &tls.Config{Certificates: []tls.Certificate{*cert}})},
		{"certmagic", benchServe(b, magic.TLSConfig())},
	}
	// Each iteration makes one handshake with each server, so that all
	// see the same load on a shared machine.
	elapsed := make([]time.Duration, len(servers))
	n := 0
	for b.Loop() {
		for i, s := range servers {
			start := time.Now()
			c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: name, RootCAs: w.Roots(), MinVersion: tls.VersionTLS13, ClientSessionCache: advertiseOnly{}})
			if err != nil {
				b.Fatal(err)
			}
			if c.ConnectionState().DidResume {
				b.Fatal("a full handshake resumed")
			}
			c.Close()
			elapsed[i] += time.Since(start)
		}
		n++
	}
	for i, s := range servers {
		b.ReportMetric(float64(n)/elapsed[i].Seconds(), s.name+"-handshakes/s")
	}
	b.ReportMetric(elapsed[1].Seconds()/elapsed[0].Seconds(), "tlsauto/static")
	b.ReportMetric(elapsed[2].Seconds()/elapsed[0].Seconds(), "tlsauto/certmagic")
}
