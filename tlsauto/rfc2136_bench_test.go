package tlsauto_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	librfc2136 "github.com/libdns/rfc2136"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/bind"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// BenchmarkStartToServedRFC2136 measures the time from Start to
// certificates served over TLS when the challenge records go to a real BIND
// 9 by RFC 2136 dynamic updates signed with TSIG, and Pebble validates
// through BIND: for one name and for 20 names at once, in the same run:
//
//   - ours: certfleet's DNS-01 solver and its rfc2136 provider, checking
//     every authoritative nameserver (BIND) directly;
//   - ours-libdns: certfleet's solver over libdns/rfc2136, the provider
//     certmagic users have;
//   - certmagic: certmagic's DNS01Solver built directly over libdns/rfc2136,
//     its propagation check on (as by default) through BIND as the resolver.
//
// Each iteration starts with empty storage, a new ACME account and new
// names. It reports the median and logs the ratios to certmagic. certmagic's
// process-wide order limiter (10 per 10 s) is raised for all sides alike, and
// each iteration has its own e-mail.
//
//	go test -run '^$' -bench BenchmarkStartToServedRFC2136 -benchtime 10x ./tlsauto/
func BenchmarkStartToServedRFC2136(b *testing.B) {
	events, window := certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow
	certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow = 10000, time.Second
	b.Cleanup(func() { certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow = events, window })

	ns := bind.Start(b, bind.Options{})
	w := testacme.Start(b, testacme.Options{VAResolver: ns.Addr()})
	ours, err := rfc2136.New(rfc2136.Config{Nameserver: ns.Addr(), TSIGKey: ns.KeyName(), TSIGSecret: ns.Secret(), TSIGAlgorithm: ns.Algorithm()})
	if err != nil {
		b.Fatal(err)
	}
	theirs := &librfc2136.Provider{KeyName: ns.KeyName(), KeyAlg: ns.Algorithm(), Key: ns.Secret(), Server: ns.Addr()}
	sides := []struct {
		name   string
		dns    dnsprovider.Provider
		solver func(tlsauto.Config) acmez.Solver // nil: certfleet's
	}{
		{"ours", ours, nil},
		{"ours-libdns", theirs, nil},
		{"certmagic", theirs, func(tlsauto.Config) acmez.Solver {
			return &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
				DNSProvider: theirs,
				Resolvers:   []string{ns.Addr()},
				Logger:      zap.NewNop(),
			}}
		}},
	}
	medians := map[string]time.Duration{}
	run := 0
	for _, n := range []int{1, 20} {
		for _, side := range sides {
			b.Run(fmt.Sprintf("names=%d/%s", n, side.name), func(b *testing.B) {
				if side.solver != nil {
					b.Cleanup(tlsauto.SetSolver(side.solver))
				}
				var times []time.Duration
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					run++
					names := make([]string, n)
					for j := range names {
						names[j] = fmt.Sprintf("b%d-n%d.example.test", run, j)
					}
					m, stop := bindBenchManager(b, w, ns, side.dns, fmt.Sprintf("ops%d@example.test", run), names)
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
				medians[fmt.Sprintf("%d/%s", n, side.name)] = median
			})
		}
		key := func(side string) time.Duration { return medians[fmt.Sprintf("%d/%s", n, side)] }
		if key("ours") > 0 && key("ours-libdns") > 0 && key("certmagic") > 0 {
			b.Logf("names=%d: median ours %v (ratio %.2f), ours over libdns/rfc2136 %v (ratio %.2f), certmagic %v",
				n, key("ours").Round(time.Millisecond), float64(key("ours"))/float64(key("certmagic")),
				key("ours-libdns").Round(time.Millisecond), float64(key("ours-libdns"))/float64(key("certmagic")),
				key("certmagic").Round(time.Millisecond))
		}
	}
}

// bindBenchManager returns a Manager for names from w, writing through p
// into ns, with empty storage, and a function that closes both.
func bindBenchManager(b *testing.B, w *testacme.World, ns *bind.Server, p dnsprovider.Provider, email string, names []string) (*tlsauto.Manager, func()) {
	b.Helper()
	store, err := file.New(file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	m, err := tlsauto.New(tlsauto.Config{
		Domains:            names,
		Email:              email,
		CA:                 w.DirectoryURL(),
		CARoots:            w.ACMERoots(),
		DNS:                p,
		Storage:            store,
		Resolvers:          []string{ns.Addr()},
		DNSPort:            ns.Port(),
		PropagationCheck:   dns01.PropagationAll,
		PropagationTimeout: 2 * time.Minute,
		Logger:             slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return m, func() { m.Close(); store.Close() }
}
