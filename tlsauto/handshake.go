package tlsauto

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// The handshake path reads an immutable snapshot of the served certificates,
// swapped atomically whenever one changes: no storage or network I/O, no lock
// shared with maintenance, and no allocations for a name it serves.

// snapshot maps server names to certificates. It is never modified once
// published.
type snapshot struct {
	exact certMap // "example.com"
	wild  certMap // "example.com" for *.example.com
}

// snapshotShards is how many maps a certMap splits its names across. A
// change copies one shard (and the array of them), not every name: at
// 10,000 names, about 40 entries instead of 10,000, which is what keeps
// names coming under management one by one from costing quadratic time.
const snapshotShards = 256

// certMap is a map from names to certificates split into shards by a hash
// of the name. Shards are shared between snapshots and never modified once
// published.
type certMap [snapshotShards]map[string]*tls.Certificate

var shardSeed = maphash.MakeSeed()

func shardOf(key string) int {
	return int(maphash.String(shardSeed, key) % snapshotShards)
}

// get returns key's certificate, nil if none.
func (c *certMap) get(key string) *tls.Certificate {
	return c[shardOf(key)][key]
}

// all yields every key and certificate.
func (c *certMap) all() iter.Seq2[string, *tls.Certificate] {
	return func(yield func(string, *tls.Certificate) bool) {
		for _, m := range c {
			for k, v := range m {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// served holds the current snapshot and serializes its replacement.
type served struct {
	cur atomic.Pointer[snapshot]
	mu  sync.Mutex // writers only

	pmu     sync.Mutex // guards pending
	pending []*change  // waiting for the next writer to publish them
}

// noCertificates is the snapshot before the first is published.
var noCertificates = &snapshot{}

func (s *served) load() *snapshot {
	if p := s.cur.Load(); p != nil {
		return p
	}
	return noCertificates
}

// set publishes a copy of the snapshot with name (a managed name, perhaps
// "*.example.com") serving cert, unless the snapshot already holds a newer
// certificate for it (a late reload never goes back in time). It reports
// whether it changed what is served.
//
// Concurrent calls are committed together: whoever takes the writer lock
// publishes every pending change in one copy of the snapshot, so that
// thousands of names coming under management at once do not copy it once
// each.
func (s *served) set(name string, cert *tls.Certificate) bool {
	c := &change{name: name, cert: cert}
	s.pmu.Lock()
	s.pending = append(s.pending, c)
	s.pmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pmu.Lock()
	batch := s.pending
	s.pending = nil
	s.pmu.Unlock()
	if len(batch) > 0 {
		s.apply(batch)
	}
	return c.changed
}

// change is one name's pending update: a certificate to serve, or nil to
// stop serving the name.
type change struct {
	name    string
	cert    *tls.Certificate
	changed bool // set by apply
}

// remove stops serving name.
func (s *served) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apply([]*change{{name: name}})
}

// apply publishes changes in one new snapshot. Called with s.mu held.
func (s *served) apply(changes []*change) {
	next := *s.load()
	var copied [2][snapshotShards]bool // shards of exact, wild already private to next
	n := 0
	for _, c := range changes {
		family, fam, key := &next.exact, 0, c.name
		if rest, ok := strings.CutPrefix(c.name, "*."); ok {
			family, fam, key = &next.wild, 1, rest
		}
		i := shardOf(key)
		cur, ok := family[i][key]
		if c.cert == nil && !ok || c.cert != nil && ok && !newer(c.cert, cur) {
			continue
		}
		if !copied[fam][i] {
			family[i] = maps.Clone(family[i])
			if family[i] == nil {
				family[i] = map[string]*tls.Certificate{}
			}
			copied[fam][i] = true
		}
		if c.cert == nil {
			delete(family[i], key)
		} else {
			family[i][key] = c.cert
		}
		c.changed = true
		n++
	}
	if n > 0 {
		s.cur.Store(&next)
	}
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
	if c := s.exact.get(name); c != nil {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return s.wild.get(name[i+1:])
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
		m.stats.noSNI.Add(1)
		return nil, errNoServerName
	}
	if hasUpperOrDot(name) {
		name = strings.TrimSuffix(strings.ToLower(name), ".")
	}
	if c := m.served.load().lookup(name); c != nil {
		m.stats.served.Add(1)
		return c, nil
	}
	m.stats.unknown.Add(1)
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
	now := time.Now()
	m.lastSync.Store(&now)
	return m.publish(name, cert, "storage"), nil
}

// load reads the certificate and key of a managed name from storage.
func (m *Manager) load(ctx context.Context, name string) (*tls.Certificate, error) {
	c, _, err := m.loadFrom(ctx, name)
	return c, err
}

// loadFrom reads the certificate and key of a managed name from storage,
// from every CA's place, and returns the newest that verifies (or, when
// none does, the first one read) with the issuer key of its CA.
func (m *Manager) loadFrom(ctx context.Context, name string) (*tls.Certificate, string, error) {
	var best *tls.Certificate
	var bestIssuer string
	var firstErr error
	now := time.Now()
	for _, issuer := range m.issuerKeys() {
		cert, err := m.loadIssued(ctx, issuer, name)
		if err != nil {
			if firstErr == nil || errors.Is(firstErr, fs.ErrNotExist) && !errors.Is(err, fs.ErrNotExist) {
				firstErr = err
			}
			continue
		}
		switch {
		case best == nil, m.verify(name, best, now) != nil:
		case m.verify(name, cert, now) != nil:
			continue
		case sameValidity(cert, best):
			// Two CAs issued within the same second: the one stored last
			// is the newest.
			if !m.storedAfter(ctx, name, issuer, bestIssuer) {
				continue
			}
		case !newer(cert, best):
			continue
		}
		best, bestIssuer = cert, issuer
	}
	if best == nil {
		return nil, "", firstErr
	}
	return best, bestIssuer, nil
}

// sameValidity reports whether a and b have the same validity period (to
// the second, as certificates carry it).
func sameValidity(a, b *tls.Certificate) bool {
	return a.Leaf != nil && b.Leaf != nil && a.Leaf.NotBefore.Equal(b.Leaf.NotBefore) && a.Leaf.NotAfter.Equal(b.Leaf.NotAfter)
}

// storedAfter reports whether name's certificate from the CA with issuer
// key a was stored after the one from issuer key b.
func (m *Manager) storedAfter(ctx context.Context, name, a, b string) bool {
	ia, erra := m.storage.Stat(ctx, certmagic.StorageKeys.SiteCert(a, name))
	ib, errb := m.storage.Stat(ctx, certmagic.StorageKeys.SiteCert(b, name))
	return erra == nil && errb == nil && ia.Modified.After(ib.Modified)
}

// loadIssued reads name's certificate and key as stored for one CA.
func (m *Manager) loadIssued(ctx context.Context, issuer, name string) (*tls.Certificate, error) {
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

// cached returns the newest certificate certmagic's cache holds for a
// managed name that verifies for it, sharing its parsed form instead of
// reading storage again, and certmagic's view of it; nil if there is none.
func (m *Manager) cached(name string) (*tls.Certificate, certmagic.Certificate) {
	var best *tls.Certificate
	var bestCM certmagic.Certificate
	now := time.Now()
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf == nil || !slices.Contains(c.Names, name) {
			continue
		}
		tc := c.Certificate
		if err := m.verify(name, &tc, now); err != nil {
			continue
		}
		if best == nil || newer(&tc, best) {
			best, bestCM = &tc, c
		}
	}
	return best, bestCM
}

// reloadAll reloads every managed name, ignoring names not yet in storage.
func (m *Manager) reloadAll(ctx context.Context) error {
	var errs []error
	for _, name := range m.Domains() {
		changed, err := m.reload(ctx, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		if changed {
			m.retryNow(name)
		}
	}
	return errors.Join(errs...)
}
