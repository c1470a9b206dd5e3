package fleettest_test

import (
	"crypto/tls"
	"testing"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/tlsauto"
)

// TestSessionFromOneMemberResumesAtAnother: on each storage backend, a TLS
// 1.3 and a TLS 1.2 session begun at one member process resumes at another
// member process, both ways, through a client session cache the
// connections share. Two more members of the same fleet with
// SessionTickets "local" (crypto/tls's own keys) resume only their own
// sessions.
func TestSessionFromOneMemberResumesAtAnother(t *testing.T) {
	t.Parallel()
	for _, b := range backendtest.All(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			env := fleettest.NewEnv(t, testacme.Options{})
			const name = "resume.example.test"
			spec := env.Spec(b.URL, name)
			shared := env.StartMembers(t, 2, spec)
			fleettest.StartTogether(t, shared...)
			for _, m := range shared {
				m.AwaitReady(t, startTimeout)
			}
			spec.SessionTickets = tlsauto.TicketsLocal
			local := []*fleettest.Member{env.StartMember(t, 2, spec), env.StartMember(t, 3, spec)}
			fleettest.StartTogether(t, local...)
			for _, m := range local {
				m.AwaitReady(t, startTimeout)
			}

			for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
				for _, pair := range [][2]*fleettest.Member{{shared[0], shared[1]}, {shared[1], shared[0]}, {local[0], local[1]}} {
					from, to := pair[0], pair[1]
					wantShared := from.Spec.SessionTickets == ""
					cache := tls.NewLRUClientSessionCache(4)
					if resumed, err := fleettest.Resume(from.Addr(), name, env.World.Roots(), v, cache); err != nil || resumed {
						t.Fatalf("%s: first connection to member %d: resumed %v, error %v", tls.VersionName(v), from.ID, resumed, err)
					}
					resumed, err := fleettest.Resume(to.Addr(), name, env.World.Roots(), v, cache)
					if err != nil {
						t.Fatalf("%s: member %d: %v", tls.VersionName(v), to.ID, err)
					}
					if resumed != wantShared {
						t.Errorf("%s: session from member %d (tickets %q) at member %d: resumed %v, want %v",
							tls.VersionName(v), from.ID, from.Spec.SessionTickets, to.ID, resumed, wantShared)
					}
					if !wantShared { // the control: its own sessions do resume
						if resumed, err := fleettest.Resume(to.Addr(), name, env.World.Roots(), v, cache); err != nil || !resumed {
							t.Errorf("%s: member %d's own session: resumed %v, error %v", tls.VersionName(v), to.ID, resumed, err)
						}
					}
				}
			}
		})
	}
}
