// Package dns01 is certfleet's ACME DNS-01 challenge solver: an
// acmez.Solver that writes challenge records through any
// dnsprovider.Provider and is safe to run on every member of a fleet that
// shares one storage. tlsauto builds one per Manager and gives it to
// certmagic; programs that drive certmagic or acmez themselves can use it
// directly:
//
//	solver, err := dns01.New(dns01.Config{
//		DNS:     provider,    // e.g. from dnsprovider.FromEnv
//		Storage: fleetStore,  // any certmagic.Storage the fleet shares
//	})
//	if err != nil {
//		return err
//	}
//	defer solver.Close()
//	issuer.DNS01Solver = solver // certmagic.ACMEIssuer
//
// Compared with certmagic's own DNS-01 solver, a Solver:
//
//   - follows a CNAME at _acme-challenge.<name> to the zone it delegates
//     to, per name;
//   - finds each zone and its authoritative nameservers itself, and checks
//     propagation by asking them directly (all of them by default, or the
//     resolvers when port 53 to them is blocked; see Propagation), polling
//     fast at first and backing off;
//   - journals every record it writes in the shared storage before writing
//     it, holds a lease there while it runs, and deletes the records of a
//     member whose lease lapsed (a crash does not leave records behind);
//     a journal entry that cannot be used (it does not parse or decrypt,
//     or was edited by hand) is moved to certfleet/quarantine/<time>/ with
//     a reason.json and a warning, instead of tripping every sweep;
//   - serializes writes to one record name across the fleet with a storage
//     lock (read-modify-write APIs such as Route 53's race otherwise);
//   - retries the provider's transient errors (dnsprovider.WithRetry).
//
// The package links miekg/dns and acmez; dnsprovider and the provider
// packages do not.
package dns01
