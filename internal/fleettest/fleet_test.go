package fleettest_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
)

func TestMain(m *testing.M) {
	if fleettest.IsMember() {
		os.Exit(fleettest.RunMember())
	}
	os.Exit(m.Run())
}

// fleetNames are ten names, among them a wildcard and its base name, whose
// challenges share one TXT record set (_acme-challenge.w.example.test): the
// members that order them write to it at the same time, which Route 53's
// read-modify-write would lose one of without the solver's fleet-wide lock.
var fleetNames = []string{
	"*.w.example.test", "w.example.test",
	"a.example.test", "b.example.test", "c.example.test", "d.example.test",
	"e.example.test", "f.example.test", "g.example.test", "h.example.test",
}

// generous bounds for waits on a loaded machine; they are not measurements.
const (
	startTimeout = 3 * time.Minute
	eventTimeout = 2 * time.Minute
)

// TestFleetOrdersOncePerNameAndSpreadsRenewals starts five members at the
// same instant on each storage backend: the CA must see exactly one order per
// name, every member must serve every name, a restarted member must order
// nothing, and a renewal forced on one member must reach all the others.
func TestFleetOrdersOncePerNameAndSpreadsRenewals(t *testing.T) {
	t.Parallel()
	for _, b := range backendtest.All(t) {
		t.Run(b.Name, func(t *testing.T) {
			env := fleettest.NewEnv(t, testacme.Options{})
			w := env.World
			spec := env.Spec(b.URL, fleetNames...)
			spec.WatchServed = true
			ms := env.StartMembers(t, 5, spec)
			fleettest.StartTogether(t, ms...)
			for _, m := range ms {
				m.AwaitReady(t, startTimeout)
			}

			// One order per name, and the certificate the orderer got is
			// what every member serves.
			c := w.Counts()
			orderedBy := obtainedBy(ms)
			t.Logf("%s: %d orders, %d certificates; ordered by member: %v", b.Name, c.Orders, c.Certificates, orderedBy)
			if c.Orders != len(fleetNames) || c.Certificates != len(fleetNames) {
				t.Fatalf("CA counts %+v, want %d orders and %d certificates", c, len(fleetNames), len(fleetNames))
			}
			for _, name := range fleetNames {
				if len(orderedBy[name]) != 1 {
					t.Errorf("%s obtained by members %v, want exactly one", name, orderedBy[name])
				}
			}
			want := obtainedSerials(ms)
			for _, m := range ms {
				for _, name := range fleetNames {
					got, err := fleettest.ServedSerial(m, name, w.Roots())
					if err != nil {
						t.Fatalf("member %d: %v", m.ID, err)
					}
					if got != want[name] {
						t.Errorf("member %d serves %s with serial %s, want %s (obtained)", m.ID, name, got, want[name])
					}
				}
			}

			// A restarted member loads everything from storage.
			ms[4].Exit(t, time.Minute)
			ms[4] = env.StartMember(t, 5, spec)
			fleettest.StartTogether(t, ms[4])
			ms[4].AwaitReady(t, startTimeout)
			if got := w.Counts(); got.Orders != c.Orders {
				t.Fatalf("a restarted member placed %d orders", got.Orders-c.Orders)
			}

			// A renewal forced on member 0 reaches every member.
			name := fleetNames[0]
			ms[0].Send(t, "renew "+name)
			done := ms[0].Await(t, eventTimeout, kind(fleettest.KindRenewDone))
			renewed := ms[0].Await(t, eventTimeout, func(m fleettest.Message) bool {
				return m.Kind == fleettest.KindRenewed && m.Serial == done.Serial
			})
			if done.Serial == want[name] {
				t.Fatalf("renewal of %s kept serial %s", name, done.Serial)
			}
			var lags []time.Duration
			for _, m := range ms[1:] {
				serving := m.Await(t, eventTimeout, func(msg fleettest.Message) bool {
					return msg.Kind == fleettest.KindServing && msg.Name == name && msg.Serial == done.Serial
				})
				lags = append(lags, serving.At().Sub(renewed.At()))
				got, err := fleettest.ServedSerial(m, name, w.Roots())
				if err != nil {
					t.Fatalf("member %d: %v", m.ID, err)
				}
				if got != done.Serial {
					t.Errorf("member %d serves %s with serial %s after the renewal, want %s", m.ID, name, got, done.Serial)
				}
			}
			t.Logf("%s: renewal on member 0 served by the other members after %v", b.Name, lags)
			if got := w.Counts(); got.Orders != c.Orders+1 {
				t.Errorf("the forced renewal placed %d orders, want 1", got.Orders-c.Orders)
			}
		})
	}
}

func kind(k string) func(fleettest.Message) bool {
	return func(m fleettest.Message) bool { return m.Kind == k }
}

// obtainedBy maps each name to the IDs of the members that obtained it.
func obtainedBy(ms []*fleettest.Member) map[string][]int {
	by := map[string][]int{}
	for _, m := range ms {
		for _, msg := range m.Messages() {
			if msg.Kind == fleettest.KindObtained {
				by[msg.Name] = append(by[msg.Name], m.ID)
			}
		}
	}
	for name := range by {
		slices.Sort(by[name])
	}
	return by
}

// obtainedSerials maps each name to the serial of the certificate obtained
// for it (the last one, if several were).
func obtainedSerials(ms []*fleettest.Member) map[string]string {
	serials := map[string]string{}
	for _, m := range ms {
		for _, msg := range m.Messages() {
			if msg.Kind == fleettest.KindObtained {
				serials[msg.Name] = msg.Serial
			}
		}
	}
	return serials
}
