package route53_test

import (
	"log"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/route53"
)

// A provider from explicit settings; credentials left empty come from the
// standard AWS chain (environment, shared files, instance roles).
func ExampleNew() {
	p, err := route53.New(route53.Config{
		Region:       "eu-west-1",
		HostedZoneID: "Z0123456789ABCDEFGHIJ",
	})
	if err != nil {
		log.Fatal(err) // bad settings are reported here; nothing exits the program
	}
	_ = dnsprovider.Audit(p, nil) // log every DNS change
}
