package tlsauto

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
)

// The handshake path reads an immutable snapshot of the served certificates,
// swapped atomically whenever one changes: no storage or network I/O, no lock
// shared with maintenance, and no allocations for a name it serves.

// snapshot maps server names to certificates. It is never modified once
// published.
type snapshot struct {
	exact map[string]*tls.Certificate // "example.com"
	wild  map[string]*tls.Certificate // "example.com" for *.example.com
}

// served holds the current snapshot and serializes its replacement.
type served struct {
	cur atomic.Pointer[snapshot]
	mu  sync.Mutex // writers only
}

func (s *served) load() *snapshot {
	if p := s.cur.Load(); p != nil {
		return p
	}
	return &snapshot{}
}

// set publishes a copy of the snapshot with name (a managed name, perhaps
// "*.example.com") serving cert, unless the snapshot already holds a newer
// certificate for it (a late reload never goes back in time). It reports
// whether it changed what is served.
func (s *served) set(name string, cert *tls.Certificate) bool {
	return s.setMany([]string{name}, []*tls.Certificate{cert}) > 0
}

// setMany is set for many names at once, with one copy of the snapshot;
// nil certificates are skipped. It returns how many names changed.
func (s *served) setMany(names []string, certs []*tls.Certificate) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.load()
	next := &snapshot{exact: maps.Clone(old.exact), wild: maps.Clone(old.wild)}
	if next.exact == nil {
		next.exact = map[string]*tls.Certificate{}
	}
	if next.wild == nil {
		next.wild = map[string]*tls.Certificate{}
	}
	changed := 0
	for i, name := range names {
		if certs[i] == nil {
			continue
		}
		m, key := next.exact, name
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			m, key = next.wild, rest
		}
		if cur, ok := m[key]; ok && !newer(certs[i], cur) {
			continue
		}
		m[key] = certs[i]
		changed++
	}
	if changed > 0 {
		s.cur.Store(next)
	}
	return changed
}

// newer reports whether a should replace b: it was issued later or, issued
// in the same second, it is a different certificate (storage, read last, is
// the truth).
func newer(a, b *tls.Certificate) bool {
	if a.Leaf == nil || b.Leaf == nil {
		return a.Leaf != nil
	}
	if !a.Leaf.NotBefore.Equal(b.Leaf.NotBefore) {
		return a.Leaf.NotBefore.After(b.Leaf.NotBefore)
	}
	if !a.Leaf.NotAfter.Equal(b.Leaf.NotAfter) {
		return a.Leaf.NotAfter.After(b.Leaf.NotAfter)
	}
	return !bytes.Equal(a.Leaf.Raw, b.Leaf.Raw)
}

// lookup finds the certificate for a server name: an exact match first,
// then a wildcard one label up.
func (s *snapshot) lookup(name string) *tls.Certificate {
	if c, ok := s.exact[name]; ok {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c, ok := s.wild[name[i+1:]]; ok {
			return c
		}
	}
	return nil
}

// errNoServerName is returned for handshakes without SNI.
var errNoServerName = errors.New("tlsauto: no server name in the TLS handshake")

// GetCertificate returns the certificate for the server name of a TLS
// handshake, for use as tls.Config.GetCertificate. It reads the Manager's
// in-memory certificates only; names outside Domains get an error.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" {
		return nil, errNoServerName
	}
	if hasUpperOrDot(name) {
		name = strings.TrimSuffix(strings.ToLower(name), ".")
	}
	if c := m.served.load().lookup(name); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("tlsauto: no certificate for %q", name)
}

// hasUpperOrDot reports whether a server name needs normalizing: it has an
// upper-case letter or a trailing dot.
func hasUpperOrDot(s string) bool {
	if strings.HasSuffix(s, ".") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// reload reads the certificate of a managed name from storage and serves it
// if it is newer than the one served. It reports whether it changed what is
// served.
func (m *Manager) reload(ctx context.Context, name string) (bool, error) {
	cert, err := m.load(ctx, name)
	if err != nil {
		return false, err
	}
	return m.served.set(name, cert), nil
}

// load reads the certificate and key of a managed name from storage.
func (m *Manager) load(ctx context.Context, name string) (*tls.Certificate, error) {
	issuer := m.magic.Issuers[0].IssuerKey()
	certPEM, err := m.storage.Load(ctx, certmagic.StorageKeys.SiteCert(issuer, name))
	if err != nil {
		return nil, err
	}
	keyPEM, err := m.storage.Load(ctx, certmagic.StorageKeys.SitePrivateKey(issuer, name))
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// A renewal being written (certificate and key are separate keys)
		// can pair a new certificate with an old key; the next change
		// notification completes the pair.
		return nil, fmt.Errorf("%s: stored certificate and key do not match yet: %w", name, err)
	}
	return &cert, nil
}

// cached returns the certificate certmagic's cache holds for a managed
// name, sharing its parsed form instead of reading storage again; nil if
// there is none.
func (m *Manager) cached(name string) *tls.Certificate {
	var best *tls.Certificate
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf == nil || !slices.Contains(c.Names, name) {
			continue
		}
		if tc := c.Certificate; best == nil || newer(&tc, best) {
			best = &tc
		}
	}
	return best
}

// reloadAll reloads every managed name, ignoring names not yet in storage.
func (m *Manager) reloadAll(ctx context.Context) error {
	var errs []error
	for _, name := range m.s.domains {
		if _, err := m.reload(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
