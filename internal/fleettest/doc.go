// Package fleettest runs fleets of certfleet members as separate OS
// processes against the hermetic test world of internal/testacme, for the
// fleet tests and figures: one ACME order per name, renewals reaching every
// member, a member killed mid-challenge, storage outages. It also holds the
// fixtures of the handshake and scale measurements: a storage wrapper that
// makes every Load slow, and certificates written straight into storage in
// certmagic's layout.
//
// A member is the test binary itself, started again with a MemberSpec in its
// environment. The test package's TestMain hands such a process to
// RunMember before any test runs:
//
//	func TestMain(m *testing.M) {
//		if fleettest.IsMember() {
//			os.Exit(fleettest.RunMember())
//		}
//		os.Exit(m.Run())
//	}
//
// A member builds a tlsauto.Manager from its spec (storage from a URL with
// storage.Open, the DNS provider by name from the environment with
// dnsprovider.FromEnv — the Route 53 provider talking to apifake's Route 53
// fake over loopback), serves TLS on 127.0.0.1, and talks to the test as JSON
// lines on standard output (Message) and commands on standard input (see
// RunMember). The test side is Env (the world the members reach) and Member
// (one process):
//
//	env := fleettest.NewEnv(t, testacme.Options{})
//	spec := env.Spec(storageURL, "a.example.test", "*.w.example.test")
//	ms := env.StartMembers(t, 5, spec) // all created, none started yet
//	fleettest.StartTogether(t, ms...)  // the start signal, to all at once
//	for _, m := range ms {
//		m.AwaitReady(t, time.Minute)
//	}
package fleettest
