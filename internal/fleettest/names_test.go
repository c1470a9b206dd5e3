package fleettest_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
)

// sharedFleet starts five members with ShareNames on backend be, each
// managing only base.example.test, and waits until all serve it.
func sharedFleet(tb testing.TB, be backendtest.Backend) (*fleettest.Env, []*fleettest.Member) {
	tb.Helper()
	env := fleettest.NewEnv(tb, testacme.Options{})
	spec := env.Spec(be.URL, "base.example.test")
	spec.ShareNames = true
	spec.WatchServed = true
	ms := env.StartMembers(tb, fleetSize, spec)
	fleettest.StartTogether(tb, ms...)
	for _, m := range ms {
		m.AwaitReady(tb, startTimeout)
	}
	return env, ms
}

// manageAtMember0 manages name at member 0 and returns, for each of the
// other members, how long after the Manage call was made at member 0 it
// served name (whichever member ordered it: the first to see the name).
func manageAtMember0(tb testing.TB, ms []*fleettest.Member, name string) []time.Duration {
	tb.Helper()
	sent := time.Now()
	ms[0].Send(tb, "manage "+name)
	managed := ms[0].Await(tb, eventTimeout, func(m fleettest.Message) bool {
		return m.Kind == fleettest.KindManaged && m.Name == name
	})
	if managed.Err != "" {
		tb.Fatalf("member 0: Manage(%s): %s", name, managed.Err)
	}
	var lags []time.Duration
	for _, m := range ms[1:] {
		serving := m.Await(tb, eventTimeout, func(msg fleettest.Message) bool {
			return msg.Kind == fleettest.KindServing && msg.Name == name && !msg.At().Before(sent)
		})
		lags = append(lags, serving.At().Sub(sent))
	}
	return lags
}

// TestFleetSharesNamesManagedAtRuntime adds a name at member 0 of five
// members sharing their names through storage: every member serves it, with
// one order in all; removed at member 3, no member serves it any more.
func TestFleetSharesNamesManagedAtRuntime(t *testing.T) {
	t.Parallel()
	for _, be := range backendtest.All(t) {
		t.Run(be.Name, func(t *testing.T) {
			env, ms := sharedFleet(t, be)
			w := env.World
			orders := w.Counts().Orders
			const name = "added.example.test"
			lags := manageAtMember0(t, ms, name)
			t.Logf("%s: %s managed at member 0, served by the others after %v", be.Name, name, lags)
			if got := w.Counts().Orders - orders; got != 1 {
				t.Fatalf("%d orders for a name managed at one member of five, want 1", got)
			}
			var serials []string
			for _, m := range ms {
				s, err := fleettest.ServedSerial(m, name, w.Roots())
				if err != nil {
					t.Fatalf("member %d: %v", m.ID, err)
				}
				serials = append(serials, s)
			}
			if len(slices.Compact(slices.Clone(serials))) != 1 {
				t.Fatalf("members serve different certificates for %s: %v", name, serials)
			}

			ms[3].Send(t, "unmanage "+name)
			if msg := ms[3].Await(t, eventTimeout, func(m fleettest.Message) bool {
				return m.Kind == fleettest.KindUnmanaged && m.Name == name
			}); msg.Err != "" {
				t.Fatalf("member 3: Unmanage(%s): %s", name, msg.Err)
			}
			for _, m := range ms {
				m.Await(t, eventTimeout, func(msg fleettest.Message) bool {
					return msg.Kind == fleettest.KindGone && msg.Name == name
				})
				if _, err := fleettest.ServedSerial(m, name, w.Roots()); err == nil {
					t.Errorf("member %d still serves %s after it was unmanaged at member 3", m.ID, name)
				}
				if _, err := fleettest.ServedSerial(m, "base.example.test", w.Roots()); err != nil {
					t.Errorf("member %d: %v", m.ID, err)
				}
			}
		})
	}
}

var benchNames atomic.Int64

// BenchmarkShareNames measures, per storage backend, the time from a call
// of Manage(name) at one member of five to each of the other four serving
// name (obtained by whichever member ordered it), with Config.ShareNames. Each
// iteration adds a new name; the first member to see it orders it, the
// others wait on the issuance lock and load it.
//
//	CERTFLEET_TEST_POSTGRES=… CERTFLEET_TEST_REDIS=… go test -run '^$' -bench '^BenchmarkShareNames$' -benchtime 5x ./internal/fleettest/
func BenchmarkShareNames(b *testing.B) {
	for _, be := range backendtest.All(b) {
		b.Run(be.Name, func(b *testing.B) {
			_, ms := sharedFleet(b, be)
			var lags []time.Duration
			b.ResetTimer()
			for range b.N {
				// Names never repeat: the shared set outlives an invocation.
				lags = append(lags, manageAtMember0(b, ms, fmt.Sprintf("n%d.example.test", benchNames.Add(1)))...)
			}
			b.StopTimer()
			slices.Sort(lags)
			b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "served-p50-ms")
			b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "served-max-ms")
			b.Logf("%s: %d names × %d members: min %v, median %v, max %v", be.Name, b.N, len(ms)-1, lags[0], lags[len(lags)/2], lags[len(lags)-1])
		})
	}
}
