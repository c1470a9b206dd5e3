package azure_test

import (
	"log"
	"os"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/azure"
)

// A provider for the zones of one resource group, authenticated as a
// service principal with the DNS Zone Contributor role.
func ExampleNew() {
	p, err := azure.New(azure.Config{
		TenantID:       "72f988bf-86f1-41af-91ab-2d7cd011db47",
		ClientID:       "0c5a4e0e-3a8b-4b1e-9d53-1f6a1b2c3d4e",
		ClientSecret:   os.Getenv("AZURE_CLIENT_SECRET"),
		SubscriptionID: "11111111-2222-3333-4444-555555555555",
		ResourceGroup:  "dns-rg",
	})
	if err != nil {
		log.Print(err) // every missing or malformed setting, named
		return
	}
	_ = dnsprovider.Guard(dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{}), "example.com")
}
