// Command hello is the certfleet one-liner as a complete program: an HTTPS
// server whose certificates are obtained and renewed over DNS-01, with every
// setting taken from the environment.
//
//	CERTFLEET_DOMAINS=example.com,*.example.com \
//	CERTFLEET_EMAIL=ops@example.com \
//	CERTFLEET_DNS_PROVIDER=cloudflare CLOUDFLARE_API_TOKEN_FILE=/run/secrets/cf \
//	go run ./examples/hello -addr :443
//
// The README lists every CERTFLEET_* variable.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"

	"github.com/certfleet/certfleet/tlsauto"

	_ "github.com/certfleet/certfleet/dnsprovider/all" // every built-in DNS provider
	_ "github.com/certfleet/certfleet/storage/all"     // every built-in storage backend
)

func main() {
	addr := flag.String("addr", ":443", "address to serve HTTPS on")
	flag.Parse()

	ln, err := tlsauto.Listen(*addr) // names from CERTFLEET_DOMAINS
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving https on %s", ln.Addr())
	log.Fatal(http.Serve(ln, hello()))
}

func hello() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s over %s\n", r.Host, r.Proto)
	})
}
