package tlsauto_test

import (
	"fmt"
	"testing"
	"time"

	librfc2136 "github.com/libdns/rfc2136"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/bind"
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
//   - certmagic: plain certmagic with its DNS01Solver over libdns/rfc2136,
//     its propagation check on (as by default) through BIND as the resolver.
//
// Each iteration starts with empty storage, a new ACME account and new
// names. It reports the median and logs the ratios to certmagic. certmagic's
// process-wide order limiter (10 per 10 s) is raised for all sides alike, and
// each iteration has its own e-mail.
//
//	go test -run '^$' -bench BenchmarkStartToServedRFC2136 -benchtime 10x ./tlsauto/
func BenchmarkStartToServedRFC2136(b *testing.B) {
	raiseCertmagicRateLimit(b)

	ns := bind.Start(b, bind.Options{})
	w := testacme.Start(b, testacme.Options{VAResolver: ns.Addr()})
	ours, err := rfc2136.New(rfc2136.Config{Nameserver: ns.Addr(), TSIGKey: ns.KeyName(), TSIGSecret: ns.Secret(), TSIGAlgorithm: ns.Algorithm()})
	if err != nil {
		b.Fatal(err)
	}
	theirs := &librfc2136.Provider{KeyName: ns.KeyName(), KeyAlg: ns.Algorithm(), Key: ns.Secret(), Server: ns.Addr()}
	overBIND := func(p dnsprovider.Provider) func(*testing.B, string, []string) benchServer {
		return func(b *testing.B, email string, names []string) benchServer {
			return benchManager(b, w, email, names, func(c *tlsauto.Config) {
				c.DNS, c.Resolvers, c.DNSPort = p, []string{ns.Addr()}, ns.Port()
			})
		}
	}
	sides := []struct {
		name  string
		start func(*testing.B, string, []string) benchServer
	}{
		{"ours", overBIND(ours)},
		{"ours-libdns", overBIND(theirs)},
		{"certmagic", benchCertmagic(w, theirs, []string{ns.Addr()}, 2*time.Minute)},
	}
	medians := map[string]time.Duration{}
	run := 0
	for _, n := range []int{1, 20} {
		for _, side := range sides {
			b.Run(fmt.Sprintf("names=%d/%s", n, side.name), func(b *testing.B) {
				median := startToServed(b, w, n, &run, func(email string, names []string) benchServer {
					return side.start(b, email, names)
				})
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
