package dnsprovider_test

import (
	"errors"
	"log"

	"github.com/libdns/hetzner"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/tlsauto"
)

// Any libdns provider that can append and delete records works with
// certfleet, built in or not: here github.com/libdns/hetzner, given to
// tlsauto.Config.DNS directly.
func Example_thirdPartyProvider() {
	m, err := tlsauto.New(tlsauto.Config{
		Domains: []string{"example.com", "*.example.com"},
		Email:   "ops@example.com",
		DNS:     &hetzner.Provider{AuthAPIToken: "token with access to the zone"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
}

// Registered under a name, a third-party provider can be chosen with
// CERTFLEET_DNS_PROVIDER=hetzner (or in CERTFLEET_DNS_ROUTES), reading its
// token from HETZNER_API_TOKEN or HETZNER_API_TOKEN_FILE.
func Example_registerThirdPartyProvider() {
	dnsprovider.Register("hetzner", func(getenv func(string) string) (dnsprovider.Provider, error) {
		token, err := dnsprovider.LookupEnv(getenv, "HETZNER_API_TOKEN")
		if err != nil || token == "" {
			return nil, errors.Join(err, errors.New("HETZNER_API_TOKEN is not set: set it (or HETZNER_API_TOKEN_FILE) to a Hetzner DNS API token"))
		}
		return &hetzner.Provider{AuthAPIToken: token}, nil
	})
	ln, err := tlsauto.Listen(":443") // CERTFLEET_DNS_PROVIDER=hetzner
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
}
