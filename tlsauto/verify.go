package tlsauto

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A certificate enters the handshake path only if it verifies for its name
// (see verify). Storage is shared and may be edited, restored from an old
// backup, cut short by a full disk or written by a buggy member: parsing is
// not enough to serve it.

// errExpired marks a certificate that failed verification only because it
// is out of its validity period.
var errExpired = errors.New("outside its validity period")

// verify reports why cert must not be served for the managed name at now,
// or nil if it may: it must cover the name as TLS clients match names
// (a wildcard name needs the wildcard itself), be within its validity
// period (unless Config.ServeExpired), hold the private key of its public
// key, and carry a chain to Config.ChainRoots — or, when ChainRoots is nil
// and the chain does not reach a system root (a private CA), a complete
// chain as the CA returned it: each certificate signed by the next.
func (m *Manager) verify(name string, cert *tls.Certificate, now time.Time) error {
	if cert == nil || len(cert.Certificate) == 0 {
		return errors.New("no certificate")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("unparsable certificate: %w", err)
		}
	}
	if err := covers(leaf, name); err != nil {
		return err
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		if !m.s.serveExpired || now.Before(leaf.NotBefore) {
			return fmt.Errorf("%w (%s to %s)", errExpired, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	signer, ok2 := cert.PrivateKey.(crypto.Signer)
	if !ok || !ok2 || !pub.Equal(signer.Public()) {
		return errors.New("the private key does not belong to the certificate")
	}
	at := now
	if at.After(leaf.NotAfter) { // ServeExpired: the chain as it was
		at = leaf.NotAfter
	}
	return m.verifyChain(leaf, cert.Certificate[1:], at)
}

// covers reports whether leaf serves the managed name.
func covers(leaf *x509.Certificate, name string) error {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		for _, n := range leaf.DNSNames {
			if strings.EqualFold(n, name) {
				return nil
			}
		}
		return fmt.Errorf("the certificate is for %v, not %s", leaf.DNSNames, "*."+rest)
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return fmt.Errorf("the certificate is for %v, not %s", leaf.DNSNames, name)
	}
	return nil
}

// verifyChain checks the chain of leaf, whose intermediates come as DER. A
// chain that verified is remembered (by a digest of its certificates) until
// the first of them expires, so that thousands of names loaded at start, or
// the same certificate seen through several paths, are verified once.
func (m *Manager) verifyChain(leaf *x509.Certificate, rest [][]byte, at time.Time) error {
	h := sha256.New()
	h.Write(leaf.Raw)
	for _, der := range rest {
		h.Write(der)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	if until, ok := m.chains.Load(key); ok && at.Before(until.(time.Time)) {
		return nil
	}
	if err := m.checkChain(leaf, rest, at); err != nil {
		return err
	}
	until := leaf.NotAfter
	for _, der := range rest {
		if c, err := x509.ParseCertificate(der); err == nil && c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	m.chains.Store(key, until)
	return nil
}

// forgetExpiredChains drops remembered chains that have expired.
func (m *Manager) forgetExpiredChains(now time.Time) {
	m.chains.Range(func(k, v any) bool {
		if !now.Before(v.(time.Time)) {
			m.chains.Delete(k)
		}
		return true
	})
}

// checkChain does verifyChain's work.
func (m *Manager) checkChain(leaf *x509.Certificate, rest [][]byte, at time.Time) error {
	inter := make([]*x509.Certificate, 0, len(rest))
	pool := x509.NewCertPool()
	for i, der := range rest {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("chain certificate %d is unparsable: %w", i+1, err)
		}
		inter = append(inter, c)
		pool.AddCert(c)
	}
	// Intermediates already known not to reach a system root (a private
	// CA's) go straight to the completeness check below.
	privKey := sha256.Sum256(bytes.Join(rest, nil))
	if _, private := m.chains.Load(privKey); !private || m.s.chainRoots != nil {
		opts := x509.VerifyOptions{
			Roots:         m.s.chainRoots,
			Intermediates: pool,
			CurrentTime:   at,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		_, err := leaf.Verify(opts)
		if err == nil {
			return nil
		}
		var unknown x509.UnknownAuthorityError
		if m.s.chainRoots != nil || !errors.As(err, &unknown) {
			return fmt.Errorf("the chain does not verify: %w", err)
		}
	}
	// No system root: accept the chain the CA returned if it is complete.
	if len(inter) == 0 {
		return errors.New("the chain is incomplete: no intermediate certificate follows the leaf, and no trusted root issued it (set ChainRoots for a private CA)")
	}
	prev := leaf
	for i, c := range inter {
		if !bytes.Equal(prev.RawIssuer, c.RawSubject) || prev.CheckSignatureFrom(c) != nil {
			return fmt.Errorf("the chain is broken: certificate %d did not issue certificate %d", i+1, i)
		}
		prev = c
	}
	m.chains.Store(privKey, inter[len(inter)-1].NotAfter)
	return nil
}

// checkServable is verify at the current time, with the reason logged at
// Warn when cert is refused.
func (m *Manager) checkServable(name string, cert *tls.Certificate, source string) error {
	err := m.verify(name, cert, time.Now())
	if err != nil {
		m.log.Warn("not serving a certificate that does not verify", "name", name, "source", source, "reason", err)
	}
	return err
}

// expiryCheckInterval is how often served certificates are checked for
// expiry: a certificate is dropped from the handshake path within this
// time of expiring (unless Config.ServeExpired).
const expiryCheckInterval = 10 * time.Second

// expiryLoop stops serving certificates that expire, unless ServeExpired,
// and forgets remembered chains that expired (whatever ServeExpired says);
// a renewal that succeeds later serves the new certificate as usual.
func (m *Manager) expiryLoop(ctx context.Context) {
	t := time.NewTicker(expiryCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now()
			if !m.s.serveExpired {
				m.dropExpired(now)
			}
			m.forgetExpiredChains(now)
		}
	}
}

// dropExpired removes from the handshake path every certificate expired at
// now, reporting each name at Error with a Failed event.
func (m *Manager) dropExpired(now time.Time) {
	snap := m.served.load()
	for _, group := range []struct {
		prefix string
		certs  *certMap
	}{{"", &snap.exact}, {"*.", &snap.wild}} {
		for key, c := range group.certs.all() {
			if c.Leaf == nil || !now.After(c.Leaf.NotAfter) {
				continue
			}
			name := group.prefix + key
			m.served.remove(name)
			err := fmt.Errorf("%w: expired at %s and no renewed certificate could be had; not serving it (Config.ServeExpired is off)", errExpired, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
			m.log.Error("certificate expired", "name", name, "error", err)
			m.emitEvent(Event{Kind: Failed, Name: name, Err: err, Time: now})
		}
	}
}
