// Package apifake serves wire-level fakes of DNS provider HTTP APIs for
// tests: the Cloudflare v4 API and the Route 53 REST/XML API, close enough to
// the real ones that the real libdns/cloudflare and libdns/route53 code (and
// aws-sdk-go-v2 underneath) talk to them unchanged.
//
// Each fake keeps no records of its own: it reads and writes a Backend, any
// libdns provider that can list, append and delete records and list zones —
// the test DNS server's zones in internal/testacme, or the in-memory Memory.
// Each fake runs on an httptest server on loopback, checks credentials the way
// the real API does (bearer token; AWS SigV4 Authorization header), counts
// requests, and injects faults on demand: a random fraction of requests
// answered with throttling or server errors (seeded, so runs reproduce),
// writes whose answer is "lost" after they were applied, and a queue of
// chosen errors for the next requests.
//
//	mem := apifake.NewMemory("example.com.")
//	cf := apifake.NewCloudflare(mem, "token")
//	defer cf.Close()
//	p := &libdnscloudflare.Provider{APIToken: "token", HTTPClient: cf.Client()}
package apifake
