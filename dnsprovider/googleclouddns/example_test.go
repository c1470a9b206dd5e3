package googleclouddns_test

import (
	"log"
	"os"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/googleclouddns"
)

// A provider from a service-account key file; bad keys and project ids are
// reported here, before any request.
func ExampleNew() {
	key, err := os.ReadFile("/etc/certfleet/dns-sa.json")
	if err != nil {
		log.Print(err)
		return
	}
	p, err := googleclouddns.New(googleclouddns.Config{ServiceAccountJSON: key, Project: "my-project"})
	if err != nil {
		log.Print(err)
		return
	}
	_ = dnsprovider.Guard(dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{}), "example.com")
}
