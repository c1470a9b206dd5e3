package tlsauto_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// BenchmarkStartToServed measures the time from Start to certificates
// served over TLS, for one name and for 20 names at once, with certfleet's
// DNS-01 solver (every authoritative nameserver checked) and with
// certmagic's DNS01Solver (its propagation check on, through the resolver;
// and, as the floor, off), on the same test world in the same run. Each iteration starts with empty
// storage, a new ACME account and new names. It reports the median and
// logs the ratio ours/certmagic.
//
// certmagic throttles orders to 10 per 10 s per CA and account e-mail with
// process-wide limiters; the benchmark raises that limit (the package
// globals RateLimitEvents/RateLimitEventsWindow) for both solvers alike, and
// gives each iteration its own e-mail.
//
//	go test -run '^$' -bench BenchmarkStartToServed -benchtime 10x ./tlsauto/
func BenchmarkStartToServed(b *testing.B) {
	raiseCertmagicRateLimit(b)

	w := testacme.Start(b, testacme.Options{})
	medians := map[string]time.Duration{}
	solvers := []struct {
		name  string
		start func(b *testing.B, email string, names []string) benchServer
	}{
		{"ours", func(b *testing.B, email string, names []string) benchServer { return benchManager(b, w, email, names) }},
		// certmagic with its propagation check on, as by default.
		{"certmagic", benchCertmagic(w, w.Provider(), []string{w.DNSAddr()}, 2*time.Minute)},
		// The floor: no propagation check at all, which no solver can beat
		// under certmagic (acmez waits 250 ms before polling the
		// authorization and again before polling the order).
		{"certmagic-nocheck", benchCertmagic(w, w.Provider(), []string{w.DNSAddr()}, -1)},
	}
	run := 0
	for _, n := range []int{1, 20} {
		for _, sv := range solvers {
			b.Run(fmt.Sprintf("names=%d/%s", n, sv.name), func(b *testing.B) {
				medians[fmt.Sprintf("%d/%s", n, sv.name)] = startToServed(b, w, n, &run, func(email string, names []string) benchServer {
					return sv.start(b, email, names)
				})
			})
		}
		ours, theirs, floor := medians[fmt.Sprintf("%d/ours", n)], medians[fmt.Sprintf("%d/certmagic", n)], medians[fmt.Sprintf("%d/certmagic-nocheck", n)]
		if ours > 0 && theirs > 0 && floor > 0 {
			b.Logf("names=%d: median ours %v, certmagic %v (ratio %.2f), certmagic without check %v (ours/that %.2f)",
				n, ours.Round(time.Millisecond), theirs.Round(time.Millisecond), float64(ours)/float64(theirs),
				floor.Round(time.Millisecond), float64(ours)/float64(floor))
		}
	}
}

// raiseCertmagicRateLimit lifts certmagic's process-wide order limiter (10
// per 10 s per CA and e-mail) until the benchmark ends.
func raiseCertmagicRateLimit(b *testing.B) {
	events, window := certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow
	certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow = 10000, time.Second
	b.Cleanup(func() { certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow = events, window })
}

// benchServer is one side of a benchmark: how to start it, what it
// serves, and how to stop it.
type benchServer struct {
	start func(context.Context) error
	tls   *tls.Config
	stop  func()
}

// startToServed runs b.N iterations, each with a server from newServer for
// n new names (numbered from *run on) and a new account e-mail, timing its
// start until every name is served over TLS. It reports the median as
// median-ms and returns it.
func startToServed(b *testing.B, w *testacme.World, n int, run *int, newServer func(email string, names []string) benchServer) time.Duration {
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		*run++
		names := make([]string, n)
		for j := range names {
			names[j] = fmt.Sprintf("r%d-n%d.example.test", *run, j)
		}
		srv := newServer(fmt.Sprintf("ops%d@example.test", *run), names)
		ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.tls)
		if err != nil {
			b.Fatal(err)
		}
		go acceptHandshakes(ln)
		b.StartTimer()

		start := time.Now()
		if err := srv.start(context.Background()); err != nil {
			b.Fatal(err)
		}
		for _, name := range names {
			if err := benchHandshake(ln.Addr().String(), name, w); err != nil {
				b.Fatal(err)
			}
		}
		times = append(times, time.Since(start))

		b.StopTimer()
		ln.Close()
		srv.stop()
		b.StartTimer()
	}
	slices.Sort(times)
	median := times[len(times)/2]
	if len(times)%2 == 0 {
		median = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	b.ReportMetric(float64(median.Microseconds())/1000, "median-ms")
	return median
}

// benchCertmagic returns plain certmagic with its DNS01Solver over dns,
// checking propagation through resolvers with the given timeout (-1: no
// check), built as certmagic's users build it, over file storage.
func benchCertmagic(w *testacme.World, dns certmagic.DNSProvider, resolvers []string, timeout time.Duration) func(*testing.B, string, []string) benchServer {
	return func(b *testing.B, email string, names []string) benchServer {
		b.Helper()
		store := benchStore(b)
		var magic *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
			Logger:           zap.NewNop(),
		})
		magic = certmagic.New(cache, certmagic.Config{Storage: store, Logger: zap.NewNop()})
		magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA: w.DirectoryURL(), TrustedRoots: w.ACMERoots(), Email: email, Agreed: true,
			DisableHTTPChallenge: true, DisableTLSALPNChallenge: true, Logger: zap.NewNop(),
			DNS01Solver: &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
				DNSProvider:        dns,
				Resolvers:          resolvers,
				PropagationTimeout: timeout,
				Logger:             zap.NewNop(),
			}},
		})}
		return benchServer{
			start: func(ctx context.Context) error { return magic.ManageSync(ctx, names) },
			tls:   &tls.Config{GetCertificate: magic.GetCertificate},
			stop:  func() { cache.Stop(); store.Close() },
		}
	}
}

func benchStore(b *testing.B) *file.Storage {
	b.Helper()
	store, err := file.New(context.Background(), file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// benchManager returns a Manager for names from w with empty storage;
// adjust, if any, changes its Config first.
func benchManager(b *testing.B, w *testacme.World, email string, names []string, adjust ...func(*tlsauto.Config)) benchServer {
	b.Helper()
	store := benchStore(b)
	cfg := tlsauto.Config{
		Domains:            names,
		Email:              email,
		CA:                 w.DirectoryURL(),
		CARoots:            w.ACMERoots(),
		DNS:                w.Provider(),
		Storage:            store,
		Resolvers:          []string{w.DNSAddr()},
		DNSPort:            worldPort(b, w),
		PropagationCheck:   dns01.PropagationAll,
		PropagationTimeout: 2 * time.Minute,
		Logger:             slog.New(slog.DiscardHandler),
	}
	for _, f := range adjust {
		f(&cfg)
	}
	m, err := tlsauto.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return benchServer{start: m.Start, tls: m.TLSConfig(), stop: func() { m.Close(); store.Close() }}
}

func acceptHandshakes(ln net.Listener) {
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
}

func benchHandshake(addr, name string, w *testacme.World) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: w.Roots()})
	if err != nil {
		return fmt.Errorf("handshake for %s: %w", name, err)
	}
	return c.Close()
}
