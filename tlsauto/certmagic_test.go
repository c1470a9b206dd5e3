package tlsauto

import (
	"testing"

	"github.com/caddyserver/certmagic"
)

// The ACME client's resolver is fixed when certmagic builds it, from
// DefaultACME.Resolver when the issuer names none: a Manager must name one
// itself whenever that global is set.
func TestACMEResolverIgnoresCertmagicDefault(t *testing.T) {
	saved := certmagic.DefaultACME.Resolver
	t.Cleanup(func() { certmagic.DefaultACME.Resolver = saved })
	certmagic.DefaultACME.Resolver = "192.0.2.1:53"
	m, err := New(Config{Domains: []string{"example.com"}, Email: "ops@example.com", DNS: nopDNS{}, Storage: &certmagic.FileStorage{Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	iss := m.magic.Issuers[0].(*certmagic.ACMEIssuer)
	if iss.Resolver == "" || iss.Resolver == certmagic.DefaultACME.Resolver {
		t.Fatalf("issuer resolver = %q: certmagic.DefaultACME.Resolver would be used", iss.Resolver)
	}
	if iss.CertObtainTimeout != certObtainTimeout {
		t.Fatalf("CertObtainTimeout = %v, want %v", iss.CertObtainTimeout, certObtainTimeout)
	}
}
