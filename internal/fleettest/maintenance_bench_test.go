package fleettest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// The maintenance load of BenchmarkGetCertificateUnderMaintenance: the
// scenario the issue describes (40 certificates due, 20 ms per storage Load).
const (
	maintDue      = 40                     // certificates due for renewal
	maintFresh    = 20                     // certificates not due (one is a wildcard)
	maintDelay    = 20 * time.Millisecond  // added to every storage Load
	maintInterval = 500 * time.Millisecond // maintenance (renewal check) interval
	maintDueIn    = 3 * time.Second        // the due certificates become due this long after they are written
	maintMeasure  = 10 * time.Second       // how long handshakes are measured
	maintCallers  = 2                      // goroutines calling GetCertificate, each once a millisecond
)

// unreachableCA is an ACME directory nobody listens at: renewals fail at
// once, so that the certificates stay due and every maintenance pass reads
// storage for each of them again.
const unreachableCA = "https://127.0.0.1:1/directory"

// BenchmarkGetCertificateUnderMaintenance measures the latency of
// GetCertificate calls while maintenance scans slow storage: 40 of 61
// certificates due for renewal, 20 ms added to every storage Load, a renewal
// check every 500 ms, renewals failing at once (unreachable CA) so that the
// certificates stay due, and a writer replacing one certificate every 100 ms
// (certmagic: CacheManagedCertificate, which takes the cache's write lock;
// tlsauto: a newer certificate in storage, which its sync loop picks up and
// swaps into its snapshot). Two goroutines call GetCertificate once a
// millisecond each for 10 s; the metrics are the latency percentiles and the
// maximum. Each GetCertificate call is followed by a call of a control
// function that returns a fixed certificate: its maximum is the noise floor
// of the machine (scheduling, garbage collection) during the same run. Run
// it once per implementation:
//
//	go test -run '^$' -bench GetCertificateUnderMaintenance -benchtime 1x ./internal/fleettest/
func BenchmarkGetCertificateUnderMaintenance(b *testing.B) {
	for _, impl := range []string{"tlsauto", "certmagic"} {
		b.Run(impl, func(b *testing.B) {
			var all, control []time.Duration
			var loads int64
			for range b.N {
				lat, ctl, n := maintenanceScenario(b, impl)
				all = append(all, lat...)
				control = append(control, ctl...)
				loads += n
			}
			slices.Sort(all)
			slices.Sort(control)
			pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
			b.ReportMetric(float64(len(all))/float64(b.N), "calls/run")
			b.ReportMetric(float64(pct(all, 0.50).Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(pct(all, 0.99).Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(pct(all, 0.999).Nanoseconds()), "p99.9-ns")
			b.ReportMetric(float64(all[len(all)-1].Nanoseconds()), "max-ns")
			b.ReportMetric(float64(control[len(control)-1].Nanoseconds()), "control-max-ns")
			b.ReportMetric(float64(loads)/float64(b.N), "storage-loads/run")
			b.Logf("%s: %d calls: p50 %v, p99 %v, p99.9 %v, max %v; control: p99.9 %v, max %v; %d storage loads while measuring",
				impl, len(all), pct(all, 0.50), pct(all, 0.99), pct(all, 0.999), all[len(all)-1],
				pct(control, 0.999), control[len(control)-1], loads)
		})
	}
}

// maintenanceScenario runs the scenario once for impl and returns the
// latency of every GetCertificate call, the latency of every call of a
// control function (which returns a certificate at once: what the machine's
// scheduling and the garbage collector add to any call), and the storage
// Loads made meanwhile.
func maintenanceScenario(b *testing.B, impl string) (lat, control []time.Duration, loads int64) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	maker, err := fleettest.NewCertMaker()
	if err != nil {
		b.Fatal(err)
	}
	base, err := file.New(context.Background(), file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer base.Close()
	// Only certmagic.Storage's methods, no change feed: tlsauto's sync loop
	// polls storage, as it does over remote storage without one.
	slow := fleettest.NewSlowStorage(struct{ storage.Storage }{base})
	issuer := fleettest.IssuerKey(unreachableCA)

	var due, fresh []string
	for i := range maintDue {
		due = append(due, fmt.Sprintf("due%d.%s.test", i, impl))
	}
	fresh = append(fresh, "*.w."+impl+".test")
	for i := range maintFresh - 1 {
		fresh = append(fresh, fmt.Sprintf("fresh%d.%s.test", i, impl))
	}
	writerName := "writer." + impl + ".test"
	names := slices.Concat(due, fresh, []string{writerName})

	// Due ones: 90 days of validity, a third of it left at dueAt.
	dueAt := time.Now().Add(maintDueIn)
	const day = 24 * time.Hour
	if err := maker.StoreAll(ctx, base, issuer, due, dueAt.Add(-60*day), dueAt.Add(30*day), 8); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if err := maker.StoreAll(ctx, base, issuer, append(fresh, writerName), now.Add(-time.Hour), now.Add(90*day-time.Hour), 8); err != nil {
		b.Fatal(err)
	}

	var get func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	var rewrite func() // the writer's work, besides storing a new certificate
	switch impl {
	case "tlsauto":
		m, err := tlsauto.New(tlsauto.Config{
			Domains:              names,
			Email:                "ops@example.test",
			CA:                   unreachableCA,
			DNS:                  testacme.NewProvider(testacme.NewZones()), // never called: the CA is unreachable
			Storage:              slow.Storage(),
			RenewalCheckInterval: maintInterval,
			SyncInterval:         time.Second,
			Logger:               slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if err := m.Start(ctx); err != nil {
			b.Fatal(err)
		}
		get = m.GetCertificate
		rewrite = func() {}
	case "certmagic":
		var magic *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
			RenewCheckInterval: maintInterval,
			Logger:             zap.NewNop(),
		})
		defer cache.Stop()
		magic = certmagic.New(cache, certmagic.Config{Storage: slow.Storage(), Logger: zap.NewNop()})
		magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA: unreachableCA, Email: "ops@example.test", Agreed: true, Logger: zap.NewNop(),
		})}
		if err := magic.ManageSync(ctx, names); err != nil {
			b.Fatal(err)
		}
		get = magic.GetCertificate
		rewrite = func() {
			if _, err := magic.CacheManagedCertificate(ctx, writerName); err != nil && ctx.Err() == nil {
				b.Errorf("writer: %v", err)
			}
		}
	}
	if time.Now().After(dueAt) {
		b.Fatalf("setup took longer than %v: the certificates were due before the measurement began", maintDueIn)
	}
	time.Sleep(time.Until(dueAt)) // the scenario's clock: from here on, 40 certificates are due
	slow.SetDelay(maintDelay)
	loadsBefore := slow.Loads()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // the writer
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			now := time.Now()
			if err := maker.Store(ctx, base, issuer, writerName, now.Add(-time.Hour), now.Add(90*day-time.Hour)); err != nil {
				b.Errorf("writer: %v", err)
				return
			}
			rewrite()
		}
	})
	lats := make([][]time.Duration, maintCallers)
	ctls := make([][]time.Duration, maintCallers)
	var fixed tls.Certificate
	noop := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &fixed, nil }
	for g := range maintCallers {
		wg.Go(func() {
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				hello := &tls.ClientHelloInfo{ServerName: fleettest.SNI(names[i%len(names)])}
				start := time.Now()
				c, err := get(hello)
				lats[g] = append(lats[g], time.Since(start))
				if err != nil || c == nil {
					b.Errorf("GetCertificate(%s): %v", hello.ServerName, err)
					return
				}
				start = time.Now()
				_, _ = noop(hello)
				ctls[g] = append(ctls[g], time.Since(start))
			}
		})
	}
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	time.Sleep(maintMeasure) // the measurement window
	close(stop)
	wg.Wait()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	var worstPause time.Duration
	for n := ms0.NumGC + 1; n <= ms1.NumGC && n+255 > ms1.NumGC; n++ {
		worstPause = max(worstPause, time.Duration(ms1.PauseNs[(n+255)%256]))
	}
	b.Logf("%s: %d garbage collections while measuring, longest stop-the-world pause %v", impl, ms1.NumGC-ms0.NumGC, worstPause)
	return slices.Concat(lats...), slices.Concat(ctls...), slow.Loads() - loadsBefore
}
