package tlsauto_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/certfleet/certfleet/tlsauto"
)

// The one-liner: every setting comes from CERTFLEET_* variables.
func ExampleListen() {
	ln, err := tlsauto.Listen(":443", "example.com", "*.example.com")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello over", r.Proto)
	})))
}

// A Manager with a Cloudflare DNS provider and certificates on disk, as a
// production server builds it.
func ExampleNew() {
	dns, err := cloudflare.New(cloudflare.Config{APIToken: os.Getenv("CLOUDFLARE_API_TOKEN")})
	if err != nil {
		log.Fatal(err)
	}
	m, err := tlsauto.New(tlsauto.Config{
		Domains: []string{"example.com", "*.example.com"},
		Email:   "ops@example.com",
		DNS:     dns,
		Logger:  slog.Default(),
	})
	if err != nil {
		log.Fatal(err) // every bad setting is reported here, naming the field
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		// The names that are not served yet stay under management and are
		// retried in the background; a server may also start without them.
		log.Fatal(err)
	}
	srv := &http.Server{Addr: ":443", TLSConfig: m.TLSConfig(), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}

// Names can be added and removed while the server runs, for example when a
// customer of a SaaS adds a domain. With Config.ShareNames every member of
// the fleet that shares the storage serves the new name too.
func ExampleManager_Manage() {
	m, err := tlsauto.NewFromEnv("app.example.com")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}

	// Returns once the name is served; it stays managed even if ctx ends first.
	if err := m.Manage(ctx, "shop.customer.example"); err != nil {
		log.Print(err)
	}
	fmt.Println(m.Domains())

	if err := m.Unmanage(ctx, "shop.customer.example"); err != nil {
		log.Print(err)
	}
}
