// Package testacme is certfleet's hermetic test world: an in-process ACME CA
// (Let's Encrypt's Pebble), an authoritative DNS server that speaks the real
// DNS protocol over UDP and TCP, and a libdns provider that writes into the
// zones that server serves.
//
// Nothing leaves loopback. Tests of every certfleet package and the offline
// demo build on it:
//
//	w := testacme.Start(t, testacme.Options{}) // zone example.test, closed by t.Cleanup
//	issuer := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
//		CA:           w.DirectoryURL(),
//		TrustedRoots: w.ACMERoots(),
//		DNS01Solver: &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
//			DNSProvider:        w.Provider(),
//			Resolvers:          []string{w.DNSAddr()},
//			PropagationTimeout: -1,
//		}},
//	})
//
// Programs that are not tests use New and Close instead of Start.
//
// The pieces can be used on their own: Zones holds DNS data, any number of
// DNSServer values can serve the same Zones (two nameservers of one zone, one
// of them paused to act as a lagging secondary), and Provider is the libdns
// view of a Zones.
package testacme
