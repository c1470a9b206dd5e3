package tlsauto_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/tlsauto"
)

// BenchmarkGetCertificate measures serving a cached certificate, for an
// exact name and a name covered by a wildcard, through tlsauto and through a
// plain certmagic Config holding the same certificates from the same storage.
func BenchmarkGetCertificate(b *testing.B) {
	w := testacme.Start(b, testacme.Options{})
	store := &certmagic.FileStorage{Path: b.TempDir()}
	domains := []string{"exact.example.test", "*.example.test"}
	m, err := tlsauto.New(tlsauto.Config{
		Domains:            domains,
		Email:              "ops@example.test",
		CA:                 w.DirectoryURL(),
		CARoots:            w.ACMERoots(),
		DNS:                w.Provider(),
		Storage:            store,
		Resolvers:          []string{w.DNSAddr()},
		PropagationTimeout: -1,
		Logger:             slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		b.Fatal(err)
	}

	// certmagic on its own, loading the same certificates from storage.
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zap.NewNop(),
	})
	defer cache.Stop()
	magic = certmagic.New(cache, certmagic.Config{Storage: store, Logger: zap.NewNop()})
	magic.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA: w.DirectoryURL(), TrustedRoots: w.ACMERoots(), Email: "ops@example.test", Agreed: true, Logger: zap.NewNop(),
	})}
	orders := w.Counts().Orders
	if err := magic.ManageSync(ctx, domains); err != nil {
		b.Fatal(err)
	}
	if w.Counts().Orders != orders {
		b.Fatal("certmagic ordered certificates instead of loading them from storage")
	}

	impls := []struct {
		name string
		get  func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	}{
		{"tlsauto", m.GetCertificate},
		{"certmagic", magic.GetCertificate},
	}
	names := []struct{ kind, sni string }{{"exact", "exact.example.test"}, {"wildcard", "www.example.test"}}
	for _, n := range names {
		for _, impl := range impls {
			b.Run(n.kind+"/"+impl.name, func(b *testing.B) {
				hello := &tls.ClientHelloInfo{ServerName: n.sni}
				b.ReportAllocs()
				for b.Loop() {
					if c, err := impl.get(hello); err != nil || c == nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
