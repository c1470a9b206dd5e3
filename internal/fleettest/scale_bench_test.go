//go:build linux

package fleettest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

const (
	scaleNames  = 10_000
	scaleSettle = 5 * time.Second  // after start-up, before the idle window
	scaleWindow = 20 * time.Second // idle window whose CPU is measured
	scaleCheck  = 10 * time.Second // renewal check interval during the window
)

// BenchmarkScale10000Names loads 10,000 certificates (none due) from file
// storage, the way a restarted member does, with tlsauto (New + Start) and
// with certmagic (NewCache + New + ManageSync) over the same storage
// directory, and measures for each: the start-up time and the CPU it used,
// the heap per certificate after start-up (live heap after GC, delta over
// the heap before, divided by 10,000), the CPU used in the 5 s after Start
// returns (tlsauto's sync loop sets up there: it maps the storage keys of
// every name and the file storage puts an inotify watch on every
// directory), and then the CPU used while idle for 20 s with a renewal
// check every 10 s (two maintenance passes; tlsauto also follows the
// storage's change feed), and for tlsauto the median time until a
// certificate that another client replaced in storage is served. For
// certmagic it also times one maintenance pass called directly
// (Cache.RenewManagedCertificates). The certificates share one P-256 key
// (see CertMaker). Writing them takes about half a minute; the whole run
// about two minutes:
//
//	go test -run '^$' -bench Scale10000Names -benchtime 1x -timeout 20m ./internal/fleettest/
func BenchmarkScale10000Names(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	store, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	maker, err := fleettest.NewCertMaker()
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, scaleNames)
	for i := range names {
		names[i] = fmt.Sprintf("n%05d.scale.test", i)
	}
	issuer := fleettest.IssuerKey(unreachableCA)
	now := time.Now()
	began := time.Now()
	if err := maker.StoreAll(ctx, store, issuer, names, now.Add(-time.Hour), now.Add(90*24*time.Hour), 32); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d certificates into file storage in %v", len(names), time.Since(began).Round(time.Millisecond))

	for _, impl := range []string{"tlsauto", "certmagic"} {
		b.Run(impl, func(b *testing.B) {
			for range b.N {
				scaleRun(b, impl, dir, names, maker, issuer)
			}
		})
	}
}

func scaleRun(b *testing.B, impl, dir string, names []string, maker *fleettest.CertMaker, issuer string) {
	b.Helper()
	ctx := context.Background()
	store, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()

	heap0 := liveHeap()
	cpu0 := cpuTime()
	start := time.Now()
	var pass func() error
	var served func(name string) string // serial served for name (tlsauto)
	switch impl {
	case "tlsauto":
		m, err := tlsauto.New(tlsauto.Config{
			Domains:              names,
			Email:                "ops@example.test",
			CA:                   unreachableCA,
			DNS:                  testacme.NewProvider(testacme.NewZones()), // never called: nothing is due
			Storage:              store,
			RenewalCheckInterval: scaleCheck,
			Logger:               slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if err := m.Start(ctx); err != nil {
			b.Fatal(err)
		}
		scrapeCost(b, m)
		served = func(name string) string {
			c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
			if err != nil || c.Leaf == nil {
				return ""
			}
			return c.Leaf.SerialNumber.Text(16)
		}
	case "certmagic":
		var magic *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
			RenewCheckInterval: scaleCheck,
			Logger:             zap.NewNop(),
		})
		defer cache.Stop()
		magic = certmagic.New(cache, certmagic.Config{Storage: store, Logger: zap.NewNop()})
		magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
			CA: unreachableCA, Email: "ops@example.test", Agreed: true, Logger: zap.NewNop(),
		})}
		if err := magic.ManageSync(ctx, names); err != nil {
			b.Fatal(err)
		}
		pass = func() error { return cache.RenewManagedCertificates(ctx) }
	}
	startup, startCPU := time.Since(start), cpuTime()-cpu0
	perCert := float64(liveHeap()-heap0) / float64(len(names))

	cpu1 := cpuTime()
	time.Sleep(scaleSettle) // background set-up after Start
	settleCPU := cpuTime() - cpu1

	cpu1 = cpuTime()
	time.Sleep(scaleWindow) // the idle window: only background work runs
	idleCPU := cpuTime() - cpu1

	b.ReportMetric(startup.Seconds(), "startup-s")
	b.ReportMetric(startCPU.Seconds(), "startup-cpu-s")
	b.ReportMetric(perCert, "heap-B/cert")
	b.ReportMetric(settleCPU.Seconds()*1000, "settle5s-cpu-ms")
	b.ReportMetric(idleCPU.Seconds()*1000, "idle20s-cpu-ms")
	msg := fmt.Sprintf("%s, %d names: start-up %v (CPU %v), heap %.0f B/certificate, CPU %v in the %v after start-up, then CPU %v in %v idle (renewal check every %v)",
		impl, len(names), startup.Round(time.Millisecond), startCPU.Round(time.Millisecond), perCert,
		settleCPU.Round(time.Millisecond), scaleSettle, idleCPU.Round(time.Millisecond), scaleWindow, scaleCheck)
	if pass != nil {
		cpu2, t2 := cpuTime(), time.Now()
		if err := pass(); err != nil {
			b.Fatal(err)
		}
		passTime, passCPU := time.Since(t2), cpuTime()-cpu2
		b.ReportMetric(passCPU.Seconds()*1000, "pass-cpu-ms")
		msg += fmt.Sprintf("; one maintenance pass %v (CPU %v)", passTime.Round(time.Millisecond), passCPU.Round(time.Millisecond))
	}
	if served != nil {
		lag, write := scaleSyncLag(b, dir, names, maker, issuer, served)
		b.ReportMetric(float64(lag.Microseconds())/1000, "sync-p50-ms")
		msg += fmt.Sprintf("; a certificate replaced in storage by another client on this host served %v after its writes began (they took %v; medians of %d)",
			lag.Round(10*time.Microsecond), write.Round(10*time.Microsecond), scaleSyncs)
	}
	b.Log(msg)
}

// scaleSyncs is how many certificates scaleSyncLag replaces.
const scaleSyncs = 10

// scaleSyncLag replaces the certificates of scaleSyncs names through a
// storage client of its own (as another member on this host would: key,
// metadata, then chain, each written and synced) and returns the medians
// of the time from the start of those writes to the new certificate being
// served, and of the writes' own duration. The Manager may serve the new
// certificate before the last write returns (the rename is visible before
// the directory is synced).
func scaleSyncLag(b *testing.B, dir string, names []string, maker *fleettest.CertMaker, issuer string, served func(string) string) (lag, write time.Duration) {
	b.Helper()
	ctx := context.Background()
	other, err := file.New(ctx, file.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer other.Close()
	var lags, writes []time.Duration
	for i := range scaleSyncs {
		name := names[(i*997)%len(names)]
		old := served(name)
		began := time.Now()
		if err := maker.Store(ctx, other, issuer, name, began.Add(-time.Hour), began.Add(90*24*time.Hour)); err != nil {
			b.Fatal(err)
		}
		writes = append(writes, time.Since(began))
		for served(name) == old {
			if time.Since(began) > time.Minute {
				b.Fatalf("replaced certificate of %s not served within a minute", name)
			}
			time.Sleep(time.Millisecond) // poll interval
		}
		lags = append(lags, time.Since(began))
	}
	slices.Sort(lags)
	slices.Sort(writes)
	return lags[len(lags)/2], writes[len(writes)/2]
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scrapeCost measures what monitoring costs on m: Status, and a full
// Prometheus scrape through the metrics package (a Registry's Gather),
// each the median of 5 calls, with the allocations of one call.
func scrapeCost(b *testing.B, m *tlsauto.Manager) {
	b.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(m))
	for _, c := range []struct {
		what string
		call func()
	}{
		{"status", func() { m.Status() }},
		{"scrape", func() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}},
	} {
		var times []time.Duration
		var ms0, ms1 runtime.MemStats
		for i := range 5 {
			runtime.ReadMemStats(&ms0)
			start := time.Now()
			c.call()
			times = append(times, time.Since(start))
			if i == 0 {
				runtime.ReadMemStats(&ms1)
			}
		}
		slices.Sort(times)
		b.ReportMetric(float64(times[2].Microseconds())/1000, c.what+"-ms")
		b.Logf("%s with %d names: median %v, %d allocations per call", c.what, scaleNames, times[2].Round(time.Microsecond), ms1.Mallocs-ms0.Mallocs)
	}
}
