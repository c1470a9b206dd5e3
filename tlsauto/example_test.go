package tlsauto_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage/file"
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

// A Manager against the in-process test CA and DNS server; in production,
// CA is left empty (Let's Encrypt) and DNS is a real provider such as
// dnsprovider/cloudflare.
func ExampleNew() {
	world, err := testacme.New(testacme.Options{Zones: []string{"example.test"}})
	if err != nil {
		log.Fatal(err)
	}
	defer world.Close()
	dir, err := os.MkdirTemp("", "certfleet-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	m, err := tlsauto.New(tlsauto.Config{
		Domains:            []string{"example.test", "*.example.test"},
		Email:              "ops@example.test",
		CA:                 world.DirectoryURL(),
		CARoots:            world.ACMERoots(),
		DNS:                world.Provider(),
		Storage:            store,
		Resolvers:          []string{world.DNSAddr()},
		PropagationTimeout: -1,
		Logger:             slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(context.Background()); err != nil {
		log.Fatal(err)
	}

	// srv := &http.Server{Addr: ":443", TLSConfig: m.TLSConfig()}
	cert, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "www.example.test"})
	if err != nil {
		log.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(leaf.DNSNames)
	// Output: [*.example.test]
}
