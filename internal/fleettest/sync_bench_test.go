package fleettest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
)

// syncRenewals is the number of renewals BenchmarkFleetSyncLatency forces.
const syncRenewals = 10

// BenchmarkFleetSyncLatency measures how long a certificate renewed by one
// member takes to be served by the others: three member processes per
// storage backend (file with its default 2 s directory scan, PostgreSQL and
// Redis with their change feeds), ten renewals forced on member 0, the lag
// from member 0's Renewed event to each other member serving the new
// certificate (each member checks what it serves every millisecond). The
// certmagic sub-benchmark shows what plain certmagic does in the same case:
// two certmagic instances over one storage, a renewal forced on one, and
// the other checked for 10 s. Run it once:
//
//	CERTFLEET_TEST_POSTGRES=… CERTFLEET_TEST_REDIS=… go test -run '^$' -bench FleetSyncLatency -benchtime 1x ./internal/fleettest/
func BenchmarkFleetSyncLatency(b *testing.B) {
	for _, be := range backendtest.All(b) {
		b.Run(be.Name, func(b *testing.B) {
			var lags []time.Duration
			for range b.N {
				lags = append(lags, syncLags(b, be)...)
			}
			slices.Sort(lags)
			b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-ms")
			b.Logf("%s: %d renewals seen by other members after: median %v, max %v", be.Name, len(lags), lags[len(lags)/2], lags[len(lags)-1])
		})
	}
	b.Run("certmagic", func(b *testing.B) {
		for range b.N {
			certmagicSync(b)
		}
	})
}

// syncLags runs the tlsauto scenario once and returns every lag.
func syncLags(b *testing.B, be backendtest.Backend) []time.Duration {
	env := fleettest.NewEnv(b, testacme.Options{})
	const name = "sync.example.test"
	spec := env.Spec(be.URL, name)
	spec.WatchServed = true
	ms := env.StartMembers(b, 3, spec)
	fleettest.StartTogether(b, ms...)
	for _, m := range ms {
		m.AwaitReady(b, startTimeout)
	}
	var lags []time.Duration
	for range syncRenewals {
		prev := doneSerials(ms[0])
		ms[0].Send(b, "renew "+name)
		done := ms[0].Await(b, eventTimeout, func(m fleettest.Message) bool {
			return m.Kind == fleettest.KindRenewDone && !slices.Contains(prev, m.Serial)
		})
		renewed := ms[0].Await(b, eventTimeout, func(m fleettest.Message) bool {
			return m.Kind == fleettest.KindRenewed && m.Serial == done.Serial
		})
		for _, m := range ms[1:] {
			s := m.Await(b, eventTimeout, func(msg fleettest.Message) bool {
				return msg.Kind == fleettest.KindServing && msg.Serial == done.Serial
			})
			lags = append(lags, max(0, s.At().Sub(renewed.At())))
		}
	}
	return lags
}

// doneSerials returns the serials of the renewals member m has reported done.
func doneSerials(m *fleettest.Member) []string {
	var s []string
	for _, msg := range m.Messages() {
		if msg.Kind == fleettest.KindRenewDone {
			s = append(s, msg.Serial)
		}
	}
	return s
}

// certmagicSync renews a certificate with one certmagic instance and
// reports whether another instance over the same storage serves the new
// certificate within 10 s.
func certmagicSync(b *testing.B) {
	w := testacme.Start(b, testacme.Options{})
	store := &certmagic.FileStorage{Path: b.TempDir()}
	ctx := context.Background()
	const name = "sync.example.test"
	newMagic := func() *certmagic.Config {
		var magic *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
			Logger:           zap.NewNop(),
		})
		b.Cleanup(cache.Stop)
		magic = certmagic.New(cache, certmagic.Config{Storage: store, Logger: zap.NewNop()})
		magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA: w.DirectoryURL(), TrustedRoots: w.ACMERoots(), Email: "ops@example.test", Agreed: true,
			DisableHTTPChallenge: true, DisableTLSALPNChallenge: true, Logger: zap.NewNop(),
			DNS01Solver: &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
				DNSProvider: w.Provider(), Resolvers: []string{w.DNSAddr()}, PropagationTimeout: -1,
			}},
		})}
		if err := magic.ManageSync(ctx, []string{name}); err != nil {
			b.Fatal(err)
		}
		return magic
	}
	a, other := newMagic(), newMagic() // a renews, other should pick it up
	serial := func(m *certmagic.Config) string {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			b.Fatal(err)
		}
		return c.Leaf.SerialNumber.Text(16)
	}
	old := serial(other)
	if err := a.RenewCertSync(ctx, name, true); err != nil {
		b.Fatal(err)
	}
	renewedAt := time.Now()
	stored, err := store.Load(ctx, certmagic.StorageKeys.SiteCert(fleettest.IssuerKey(w.DirectoryURL()), name))
	if err != nil {
		b.Fatal(err)
	}
	block, _ := pem.Decode(stored)
	if block == nil {
		b.Fatal("no PEM certificate stored")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	renewed := leaf.SerialNumber.Text(16)
	if renewed == old {
		b.Fatal("certmagic's renewal kept the serial")
	}
	for time.Since(renewedAt) < 10*time.Second {
		if serial(other) == renewed {
			b.Logf("certmagic: the other instance serves the renewed certificate after %v", time.Since(renewedAt))
			return
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	b.Logf("certmagic: the other instance still serves the old certificate 10 s after the renewal (it reloads only when its own copy is due for renewal)")
}
