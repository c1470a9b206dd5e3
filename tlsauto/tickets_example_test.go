package tlsauto_test

import (
	"context"
	"crypto/tls"
	"log"
	"net/http"
	"time"

	"github.com/certfleet/certfleet/tlsauto"
)

// A server that builds its own tls.Config around GetCertificate installs
// the fleet's session ticket keys on it, so that a session begun at any
// member resumes here.
func ExampleManager_InstallSessionTickets() {
	m, err := tlsauto.NewFromEnv("example.com")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{
		GetCertificate: m.GetCertificate,
		MinVersion:     tls.VersionTLS13,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	m.InstallSessionTickets(cfg) // the keys follow every rotation, in cfg and its clones
	srv := &http.Server{Addr: ":443", TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
