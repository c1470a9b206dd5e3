// Package certfleet is automatic TLS for Go servers and the fleets they run
// in: certificates obtained and renewed over ACME DNS-01 through any
// libdns-compatible DNS provider, wildcards included, kept in storage that
// every replica shares, so that the CA sees one order per name however many
// servers there are.
//
// This package holds only documentation. The parts:
//
//   - tlsauto: the API a server uses — Listen (the one-liner), or New,
//     Manager.Start and Manager.TLSConfig.
//   - dnsprovider: the DNS provider contract, the providers
//     (dnsprovider/cloudflare, dnsprovider/route53), the registry behind
//     CERTFLEET_DNS_PROVIDER, and wrappers (zone guard, audit log, retries).
//   - dnsprovider/dns01: the fleet-safe DNS-01 solver tlsauto runs on top
//     of a provider.
//   - storage: the storage contract, storage.Open behind CERTFLEET_STORAGE,
//     and backends (storage/file, storage/postgres, storage/redis,
//     storage/encrypt); storage/storagetest is the conformance suite any
//     backend can run.
//
// Start with the README: `go run ./examples/demo` shows the whole job
// offline, against an in-process CA and DNS server.
package certfleet
