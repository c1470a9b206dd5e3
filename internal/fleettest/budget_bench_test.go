package fleettest_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// BenchmarkFirstIssuancePaced obtains certificates for 300 new names with
// one Manager under an order budget of 100 per 10 s, and reports how the
// first issuance is paced: the time until every name is served, the most
// new-order requests the CA saw in any 10 s, and the requests per window
// (in the log). certmagic's per-process limiter (10 orders per 10 s) is
// raised for the run, as a fleet of ten members would have it, so that
// the budget is what paces. The scale benchmark (BenchmarkScale10000Names)
// only loads certificates from storage; this is its issuing counterpart.
//
//	go test -run '^$' -bench FirstIssuancePaced -benchtime 1x -timeout 10m ./internal/fleettest/
func BenchmarkFirstIssuancePaced(b *testing.B) {
	const names, budget, window = 300, 100, 10 * time.Second
	events, evWindow := certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow
	certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow = 1000, time.Second
	b.Cleanup(func() { certmagic.RateLimitEvents, certmagic.RateLimitEventsWindow = events, evWindow })
	for i := range b.N {
		w := testacme.Start(b, testacme.Options{})
		store, err := file.New(context.Background(), file.Config{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		doms := make([]string, names)
		for j := range doms {
			doms[j] = fmt.Sprintf("p%d-%03d.example.test", i, j)
		}
		m, err := tlsauto.New(tlsauto.Config{
			Domains: doms, Email: "ops@example.test",
			CA: w.DirectoryURL(), CARoots: w.ACMERoots(), DNS: w.Provider(), Storage: store,
			Resolvers: []string{w.DNSAddr()}, PropagationTimeout: -1,
			OrderBudget: budget, OrderBudgetWindow: window,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err = m.Start(ctx)
		cancel()
		took := time.Since(began)
		m.Close()
		store.Close()
		if err != nil {
			b.Fatal(err)
		}
		reqs := w.NewOrderRequests()
		var times []time.Time
		for _, r := range reqs {
			times = append(times, r.At)
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		most := 0
		for k := range times {
			j, _ := slices.BinarySearchFunc(times, times[k].Add(window), func(a, b time.Time) int { return a.Compare(b) })
			most = max(most, j-k)
		}
		per := map[int]int{}
		for _, t := range times {
			per[int(t.Sub(began)/window)]++
		}
		var line string
		for k := 0; k <= int(took/window); k++ {
			line += fmt.Sprintf(" [%v,%v):%d", time.Duration(k)*window, time.Duration(k+1)*window, per[k])
		}
		b.ReportMetric(took.Seconds(), "all-served-s")
		b.ReportMetric(float64(most), "max-orders/10s")
		b.Logf("%d names, budget %d per %v: all served after %v; %d new-order requests, at most %d in any %v; per window from start:%s",
			names, budget, window, took.Round(time.Millisecond), len(reqs), most, window, line)
	}
}
