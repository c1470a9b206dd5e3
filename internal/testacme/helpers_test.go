package testacme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// client is a certmagic setup owned by one test, every field set.
type client struct {
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
}

// newClient wires certmagic to w the way certfleet does: own cache and
// config, no package globals, DNS-01 through w's provider.
func newClient(t *testing.T, w *testacme.World, eab *acme.EAB) *client {
	t.Helper()
	logger := zap.NewNop()
	c := &client{}
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return c.cfg, nil },
		OCSPCheckInterval:  time.Hour,
		RenewCheckInterval: time.Hour,
		Capacity:           0,
		Logger:             logger,
	})
	t.Cleanup(cache.Stop)
	c.cfg = certmagic.New(cache, certmagic.Config{
		RenewalWindowRatio: certmagic.DefaultRenewalWindowRatio,
		OnEvent:            func(context.Context, string, map[string]any) error { return nil },
		OnDemand:           nil,
		MustStaple:         false,
		KeySource:          certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		Storage:            &certmagic.FileStorage{Path: t.TempDir()},
		DisableARI:         true,
		Logger:             logger,
	})
	c.issuer = certmagic.NewACMEIssuer(c.cfg, certmagic.ACMEIssuer{
		CA:                      w.DirectoryURL(),
		TestCA:                  "",
		Email:                   "ops@example.test",
		Agreed:                  true,
		ExternalAccount:         eab,
		DisableHTTPChallenge:    true,
		DisableTLSALPNChallenge: true,
		TrustedRoots:            w.ACMERoots(),
		CertObtainTimeout:       time.Minute,
		Logger:                  logger,
		DNS01Solver: &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        w.Provider(),
			Resolvers:          []string{w.DNSAddr()},
			PropagationTimeout: -1,
			Logger:             logger,
		}},
	})
	c.cfg.Issuers = []certmagic.Issuer{c.issuer}
	return c
}

// issue obtains one certificate for all names in one order and returns its
// PEM chain and the PEM private key. It may run on any goroutine.
func (c *client) issue(names ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	issued, err := c.issuer.Issue(ctx, csr)
	if err != nil {
		return nil, nil, err
	}
	return issued.Certificate, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// serve caches the certificate in certmagic and returns the chain a TLS
// client asking for serverName gets, verified against roots.
func (c *client) serve(t *testing.T, certPEM, keyPEM []byte, serverName string, roots *x509.CertPool) ([]*x509.Certificate, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.cfg.CacheUnmanagedCertificatePEMBytes(ctx, certPEM, keyPEM, nil); err != nil {
		t.Fatalf("caching the certificate: %v", err)
	}
	srvConn, cliConn := net.Pipe()
	defer srvConn.Close()
	defer cliConn.Close()
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- tls.Server(srvConn, c.cfg.TLSConfig()).HandshakeContext(ctx)
	}()
	cli := tls.Client(cliConn, &tls.Config{ServerName: serverName, RootCAs: roots})
	err := cli.HandshakeContext(ctx)
	_ = cliConn.Close()
	<-srvDone
	if err != nil {
		return nil, err
	}
	return cli.ConnectionState().VerifiedChains[0], nil
}

// query asks the DNS server at addr over network: "udp", "tcp", or
// "udp-edns" (UDP with an EDNS0 buffer of 4096 octets).
func query(t *testing.T, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	if network == "udp-edns" {
		c.Net = "udp"
		c.UDPSize = 4096
		m.SetEdns0(4096, false)
	}
	in, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s %s to %s: %v", network, name, dns.TypeToString[qtype], addr, err)
	}
	return in
}

// txtValues returns the TXT values in the answer section of m, as the octets
// on the wire (miekg/dns hands them out escaped).
func txtValues(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			var b strings.Builder
			for _, part := range txt.Txt {
				b.WriteString(unescape(part))
			}
			out = append(out, b.String())
		}
	}
	return out
}

// unescape undoes miekg/dns's presentation escapes: \X and \DDD.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		if i+3 < len(s) && isDigits(s[i+1:i+4]) {
			n, _ := strconv.Atoi(s[i+1 : i+4])
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
