package fleettest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// IssuerKey returns the key under which certmagic (and so tlsauto) keeps the
// certificates of the ACME CA at caURL in storage.
func IssuerKey(caURL string) string {
	return certmagic.NewACMEIssuer(&certmagic.Config{}, certmagic.ACMEIssuer{CA: caURL}).IssuerKey()
}

// CertMaker makes certificates signed by a local CA and writes them into
// storage the way certmagic stores what it obtains (certificate chain,
// private key and metadata under the issuer key), so that tlsauto and
// certmagic load them as if an ACME CA had issued them.
//
// Every certificate shares one P-256 key: generating a key per certificate
// would dominate the time of writing thousands, and neither library looks
// at whether keys repeat.
type CertMaker struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	key    *ecdsa.PrivateKey
	keyPEM []byte
}

// NewCertMaker returns a CertMaker with a new CA and key.
func NewCertMaker() (*CertMaker, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fleettest local CA"},
		NotBefore:             now.Add(-365 * 24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &CertMaker{ca: ca, caKey: caKey, key: key, keyPEM: keyPEM}, nil
}

// Roots returns a pool holding the local CA.
func (c *CertMaker) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca)
	return p
}

// Key returns the private key of every certificate.
func (c *CertMaker) Key() crypto.Signer { return c.key }

// Make returns the PEM chain (leaf, then CA) of a certificate for name
// valid from notBefore to notAfter.
func (c *CertMaker) Make(name string, notBefore, notAfter time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, c.key.Public(), c.caKey)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", name, err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.ca.Raw})...), nil
}

// Store makes a certificate for name (see Make) and stores it under
// issuerKey in certmagic's layout: the key first and the chain last, so that
// a reader never finds a chain without its key.
func (c *CertMaker) Store(ctx context.Context, s certmagic.Storage, issuerKey, name string, notBefore, notAfter time.Time) error {
	chain, err := c.Make(name, notBefore, notAfter)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(certmagic.CertificateResource{SANs: []string{name}})
	if err != nil {
		return err
	}
	for _, kv := range []struct {
		key   string
		value []byte
	}{
		{certmagic.StorageKeys.SitePrivateKey(issuerKey, name), c.keyPEM},
		{certmagic.StorageKeys.SiteMeta(issuerKey, name), meta},
		{certmagic.StorageKeys.SiteCert(issuerKey, name), chain},
	} {
		if err := s.Store(ctx, kv.key, kv.value); err != nil {
			return fmt.Errorf("storing %s: %w", kv.key, err)
		}
	}
	return nil
}

// StoreAll stores a certificate for each name (see Store), with workers
// writing concurrently.
func (c *CertMaker) StoreAll(ctx context.Context, s certmagic.Storage, issuerKey string, names []string, notBefore, notAfter time.Time, workers int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan string)
	errs := make(chan error, max(workers, 1))
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for name := range next {
				if err := c.Store(ctx, s, issuerKey, name, notBefore, notAfter); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for _, name := range names {
		select {
		case next <- name:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}
