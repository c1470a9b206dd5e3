package fleettest_test

import (
	"context"
	"crypto/tls"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage"
)

const (
	fleetSize     = 5  // members per fleet
	syncRenewals  = 10 // renewals forced in each tlsauto fleet
	certmagicWait = 10 * time.Second
)

// BenchmarkFleet measures, per storage backend, what a fleet of five
// members managing the ten fleetNames does: the ACME orders when they start
// at the same instant, and how long a certificate renewed by one member
// takes to be served by the others.
//
// tlsauto: five member processes; ten renewals forced on member 0, the lag
// from its Renewed event to each other member serving the new certificate
// (each member checks what it serves every millisecond). The event comes
// just after the certificate is stored, so a lag can be negative: the
// member was told by storage before the renewer reported. File storage
// delivers changes through inotify (the members share one host),
// PostgreSQL, Redis, etcd and NATS by their change feeds (etcd runs as one
// member started by the benchmark).
//
// certmagic, beside it in the same run: five plain certmagic instances (each
// its own cache, in this process) over the same kind of storage; one
// renewal forced on one of them, the others checked for 10 s.
//
//	CERTFLEET_TEST_POSTGRES=… CERTFLEET_TEST_REDIS=… CERTFLEET_TEST_NATS=… go test -run '^$' -bench '^BenchmarkFleet$' -benchtime 1x ./internal/fleettest/
func BenchmarkFleet(b *testing.B) {
	bes := backendtest.All(b)
	if be, ok := backendtest.Etcd(b); ok {
		bes = append(bes, be)
	}
	if be, ok := backendtest.NATS(b); ok {
		bes = append(bes, be)
	}
	for _, be := range bes {
		b.Run("tlsauto/"+be.Name, func(b *testing.B) {
			var lags []time.Duration
			var orders int
			for range b.N {
				o, l := tlsautoFleet(b, be)
				orders += o
				lags = append(lags, l...)
			}
			slices.Sort(lags)
			b.ReportMetric(float64(orders)/float64(b.N*len(fleetNames)), "start-orders/name")
			b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "sync-p50-ms")
			b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "sync-max-ms")
			b.Logf("tlsauto on %s: %d orders for %d names started together on %d members; %d renewals seen by the other members after: min %v, median %v, max %v",
				be.Name, orders/b.N, len(fleetNames), fleetSize, len(lags), lags[0], lags[len(lags)/2], lags[len(lags)-1])
		})
		b.Run("certmagic/"+be.Name, func(b *testing.B) {
			for range b.N {
				certmagicFleet(b, be)
			}
		})
	}
}

// tlsautoFleet runs the tlsauto scenario once and returns the orders placed
// at start and every renewal lag.
func tlsautoFleet(b *testing.B, be backendtest.Backend) (int, []time.Duration) {
	env := fleettest.NewEnv(b, testacme.Options{})
	spec := env.Spec(be.URL, fleetNames...)
	spec.WatchServed = true
	ms := env.StartMembers(b, fleetSize, spec)
	fleettest.StartTogether(b, ms...)
	for _, m := range ms {
		m.AwaitReady(b, startTimeout)
	}
	orders := env.World.Counts().Orders
	name := fleetNames[0]
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
				return msg.Kind == fleettest.KindServing && msg.Name == name && msg.Serial == done.Serial
			})
			lags = append(lags, s.At().Sub(renewed.At())) // negative: served before the renewer's event
		}
	}
	if got := env.World.Counts().Orders - orders; got != syncRenewals {
		b.Errorf("%d forced renewals placed %d orders", syncRenewals, got)
	}
	return orders, lags
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

// certmagicFleet runs the certmagic scenario once: five certmagic instances
// over one storage start together; one renews a certificate; are the others
// serving it within certmagicWait?
func certmagicFleet(b *testing.B, be backendtest.Backend) {
	w := testacme.Start(b, testacme.Options{})
	ctx := context.Background()
	newMagic := func() *certmagic.Config {
		store, err := storage.Open(ctx, be.URL) // a client of its own, as a member has
		if err != nil {
			b.Fatal(err)
		}
		if c, ok := store.(io.Closer); ok {
			b.Cleanup(func() { c.Close() })
		}
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
		return magic
	}
	fleet := make([]*certmagic.Config, fleetSize)
	for i := range fleet {
		fleet[i] = newMagic()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(fleet))
	for i, magic := range fleet {
		wg.Go(func() { errs[i] = magic.ManageSync(ctx, fleetNames) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	orders := w.Counts().Orders
	b.ReportMetric(float64(orders)/float64(len(fleetNames)), "start-orders/name")

	name := fleetNames[1] // not the wildcard: the serial is read back with its own name
	serial := func(m *certmagic.Config) string {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			b.Fatal(err)
		}
		return c.Leaf.SerialNumber.Text(16)
	}
	old := serial(fleet[1])
	if err := fleet[0].RenewCertSync(ctx, name, true); err != nil {
		b.Fatal(err)
	}
	renewedAt := time.Now()
	var picked int
	for time.Since(renewedAt) < certmagicWait {
		picked = 0
		for _, m := range fleet[1:] {
			if serial(m) != old {
				picked++
			}
		}
		if picked == len(fleet)-1 {
			break
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	b.ReportMetric(float64(picked), "members-serving-renewal")
	b.Logf("certmagic on %s: %d orders for %d names started together on %d instances; %d of the other %d instances serve the renewed certificate %v after the renewal (certmagic reloads a certificate when its own copy is due)",
		be.Name, orders, len(fleetNames), fleetSize, picked, len(fleet)-1, time.Since(renewedAt).Round(time.Second))
}
