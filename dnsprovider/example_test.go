package dnsprovider_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/libdns/libdns"
)

func ExampleFromEnv() {
	// With CERTFLEET_DNS_PROVIDER=cloudflare and CLOUDFLARE_API_TOKEN set, and
	// import _ "github.com/certfleet/certfleet/dnsprovider/cloudflare":
	p, err := dnsprovider.FromEnv(os.Getenv("CERTFLEET_DNS_PROVIDER"))
	if err != nil {
		log.Fatal(err) // names the variable, or the import that is missing
	}
	_ = p
}

// A provider from outside certfleet registers itself under a name, reading
// its secret with LookupEnv so that NAME_FILE works too; FromEnv (or
// FromGetenv, here with a map) then builds it by that name, as
// CERTFLEET_DNS_PROVIDER does.
func ExampleRegister() {
	dnsprovider.Register("example-dns", func(getenv func(string) string) (dnsprovider.Provider, error) {
		token, err := dnsprovider.LookupEnv(getenv, "EXAMPLE_DNS_TOKEN")
		if err != nil {
			return nil, err
		}
		if token == "" {
			return nil, errors.New("EXAMPLE_DNS_TOKEN is not set: set it to an API token with DNS write access")
		}
		return apifake.NewMemory("example.com."), nil // a real provider would use token
	})

	env := map[string]string{"EXAMPLE_DNS_TOKEN": "t0ken"}
	p, err := dnsprovider.FromGetenv("example-dns", func(name string) string { return env[name] })
	fmt.Println(dnsprovider.Name(p), err)

	_, err = dnsprovider.FromGetenv("example-dns", func(string) string { return "" })
	fmt.Println(err)
	// Output:
	// apifake <nil>
	// dnsprovider: example-dns: EXAMPLE_DNS_TOKEN is not set: set it to an API token with DNS write access
}

// Wrap any provider (here an in-memory one) to retry transient errors, stay
// within one zone and log every change.
func Example_wrappers() {
	var p dnsprovider.Provider = apifake.NewMemory("example.com.", "example.org.")
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "duration" {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	p = dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{})
	p = dnsprovider.Guard(p, "example.com")
	p = dnsprovider.Audit(p, logger, dnsprovider.AuditMember("web-1"))

	ctx := context.Background()
	rec := libdns.TXT{Name: "_acme-challenge", Text: "digest", TTL: 2 * time.Minute}
	if _, err := p.AppendRecords(ctx, "example.com.", []libdns.Record{rec}); err != nil {
		fmt.Println(err)
	}
	if _, err := p.AppendRecords(ctx, "example.org.", []libdns.Record{rec}); err != nil {
		fmt.Println("refused")
	}
	// Output:
	// level=INFO msg="dns change" op=append provider=apifake zone=example.com. name=_acme-challenge.example.com. type=TXT data=digest ttl=2m0s member=web-1 result=ok
	// level=WARN msg="dns change" op=append provider=apifake zone=example.org. name=_acme-challenge.example.org. type=TXT data=digest ttl=2m0s member=web-1 result="dnsprovider: guard refused append in zone \"example.org.\": zone outside the allowed zones (allowed: example.com); add it to the guard's zones if certfleet should manage it"
	// refused
}
