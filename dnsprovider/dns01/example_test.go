package dns01_test

import (
	"log"
	"os"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
)

// A Solver for a program that configures certmagic itself (tlsauto does
// this for its Managers).
func ExampleNew() {
	provider, err := dnsprovider.FromEnv(os.Getenv("CERTFLEET_DNS_PROVIDER"))
	if err != nil {
		log.Fatal(err)
	}
	store := &certmagic.FileStorage{Path: "/var/lib/certs"} // shared by the fleet
	solver, err := dns01.New(dns01.Config{
		DNS:         provider,
		Storage:     store,
		Propagation: dns01.PropagationAll,
		OwnerLease:  30 * time.Second, // a crashed member's records go within ~30 s
	})
	if err != nil {
		log.Fatal(err) // names the field and the fix
	}
	defer solver.Close()

	// The template for certmagic.NewACMEIssuer, with the certmagic.Config
	// whose Storage is store.
	template := certmagic.ACMEIssuer{
		CA:                      certmagic.LetsEncryptStagingCA,
		Email:                   "ops@example.com",
		Agreed:                  true,
		DisableHTTPChallenge:    true,
		DisableTLSALPNChallenge: true,
		DNS01Solver:             solver,
	}
	_ = template
}
