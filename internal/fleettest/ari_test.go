package fleettest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
)

// TestFleetFetchesRenewalInfoOncePerCertificatePerPeriod runs five members
// over each storage backend, checking for renewals every second, while the
// CA tells clients to ask for a certificate's renewal information (ARI)
// again after 3 s. Each member would fetch it every 3 s on its own; sharing
// storage, the fleet fetches it once per period: no two fetches for a
// certificate come less than 3 s apart, yet fetches keep coming.
func TestFleetFetchesRenewalInfoOncePerCertificatePerPeriod(t *testing.T) {
	t.Parallel()
	const period = 3 * time.Second
	names := []string{"a.example.test", "b.example.test"}
	for _, b := range backendtest.All(t) {
		t.Run(b.Name, func(t *testing.T) {
			env := fleettest.NewEnv(t, testacme.Options{ARIRetryAfter: period})
			w := env.World
			spec := env.Spec(b.URL, names...)
			spec.RenewalCheckInterval = time.Second
			ms := env.StartMembers(t, 5, spec)
			fleettest.StartTogether(t, ms...)
			for _, m := range ms {
				m.AwaitReady(t, startTimeout)
			}
			ids := func() map[string][]time.Time {
				byID := map[string][]time.Time{}
				for _, r := range w.RenewalInfoRequests() {
					byID[r.CertID] = append(byID[r.CertID], r.At)
				}
				return byID
			}
			// One fetch at issuance, then one per period: four fetches of
			// each certificate span at least three periods, during which
			// the members checked about 15 times each.
			wait.For(t, eventTimeout, "four renewal information fetches per certificate", func() bool {
				got := ids()
				if len(got) < len(names) {
					return false
				}
				for _, at := range got {
					if len(at) < 4 {
						return false
					}
				}
				return true
			})
			byID := ids()
			if len(byID) != len(names) {
				t.Errorf("renewal information asked for %d certificates, want %d", len(byID), len(names))
			}
			for id, at := range byID {
				slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
				var gaps []time.Duration
				for i := 1; i < len(at); i++ {
					gaps = append(gaps, at[i].Sub(at[i-1]))
				}
				t.Logf("%s: certificate %s: %d fetches, %v apart", b.Name, id, len(at), gaps)
				for _, gap := range gaps {
					if gap < period {
						t.Errorf("certificate %s: renewal information fetched twice %v apart, within one Retry-After period (%v)", id, gap, period)
						break
					}
				}
			}
			if c := w.Counts(); c.Orders != len(names) {
				t.Errorf("%d orders, want %d: nothing is due for renewal", c.Orders, len(names))
			}
		})
	}
}
