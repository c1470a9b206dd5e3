package cloudflare_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/libdns/libdns"
)

func ExampleNew() {
	p, err := cloudflare.New(cloudflare.Config{APIToken: "token-with-Zone.DNS:Edit"})
	if err != nil {
		log.Fatal(err)
	}
	// Retry transient errors, write only to example.com, log every change.
	p = dnsprovider.Audit(dnsprovider.Guard(dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{}), "example.com"), slog.Default())
	_, err = p.AppendRecords(context.Background(), "example.com.", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", Text: "digest", TTL: 2 * time.Minute},
	})
	if err != nil {
		log.Print(err)
	}
}
