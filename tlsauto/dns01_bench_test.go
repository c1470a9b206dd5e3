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
	"github.com/mholt/acmez/v3"
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
		name   string
		solver func(tlsauto.Config) acmez.Solver // nil: certfleet's
	}{
		{"ours", nil},
		{"certmagic", certmagicSolver(2 * time.Minute)}, // the check on, as by default
		// The floor: no propagation check at all, which no solver can beat
		// under certmagic (acmez waits 250 ms before polling the
		// authorization and again before polling the order).
		{"certmagic-nocheck", certmagicSolver(-1)},
	}
	run := 0
	for _, n := range []int{1, 20} {
		for _, sv := range solvers {
			b.Run(fmt.Sprintf("names=%d/%s", n, sv.name), func(b *testing.B) {
				if sv.solver != nil {
					b.Cleanup(tlsauto.SetSolver(sv.solver))
				}
				median := startToServed(b, w, n, &run, func(email string, names []string) (*tlsauto.Manager, func()) {
					return benchManager(b, w, email, names)
				})
				medians[fmt.Sprintf("%d/%s", n, sv.name)] = median
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

// startToServed runs b.N iterations, each with a Manager from newManager for
// n new names (numbered from *run on) and a new account e-mail, timing Start
// until every name is served over TLS. It reports the median as median-ms
// and returns it.
func startToServed(b *testing.B, w *testacme.World, n int, run *int, newManager func(email string, names []string) (*tlsauto.Manager, func())) time.Duration {
	var times []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		*run++
		names := make([]string, n)
		for j := range names {
			names[j] = fmt.Sprintf("r%d-n%d.example.test", *run, j)
		}
		m, stop := newManager(fmt.Sprintf("ops%d@example.test", *run), names)
		ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
		if err != nil {
			b.Fatal(err)
		}
		go acceptHandshakes(ln)
		b.StartTimer()

		start := time.Now()
		if err := m.Start(context.Background()); err != nil {
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
		stop()
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

// certmagicSolver returns certmagic's DNS01Solver over the Config's
// provider and resolvers, with the given propagation timeout (-1: no check).
func certmagicSolver(timeout time.Duration) func(tlsauto.Config) acmez.Solver {
	return func(c tlsauto.Config) acmez.Solver {
		return &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        c.DNS,
			Resolvers:          c.Resolvers,
			PropagationTimeout: timeout,
			Logger:             zap.NewNop(),
		}}
	}
}

// benchManager returns a Manager for names from w with empty storage, and a
// function that closes both; adjust, if any, changes the Config first.
func benchManager(b *testing.B, w *testacme.World, email string, names []string, adjust ...func(*tlsauto.Config)) (*tlsauto.Manager, func()) {
	b.Helper()
	store, err := file.New(file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
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
	return m, func() { m.Close(); store.Close() }
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
