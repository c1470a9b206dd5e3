package tlsauto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
)

// Manager obtains, renews and serves the certificates of one Config. Create
// it with New, call Start, serve with TLSConfig, and Close it when done.
type Manager struct {
	s       settings
	magic   *certmagic.Config
	cache   *certmagic.Cache
	storage certmagic.Storage
	log     *slog.Logger
	dns01   *dns01.Solver // nil when a test replaced it

	// served is what the handshake path reads.
	served served

	// closer releases storage the Manager opened itself (the default).
	closer io.Closer

	// ctx ends when Close is called; every background activity ends with it.
	ctx       context.Context
	cancel    context.CancelFunc
	syncOnce  sync.Once
	wg        sync.WaitGroup // background goroutines
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and returns a Manager for it. It does no network I/O;
// certificates are loaded or obtained by Start.
func New(cfg Config) (*Manager, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	m := &Manager{s: s, log: s.logger.With("component", "certfleet")}
	store := cfg.Storage
	if store == nil {
		st, closer, err := defaultStorage()
		if err != nil {
			return nil, fmt.Errorf("tlsauto: Storage: %w", err)
		}
		store, m.closer = st, closer
	}
	m.storage = store
	var solver acmez.Solver
	if testHooks.solver != nil {
		solver = testHooks.solver(cfg)
	} else {
		if m.dns01, err = newSolver(cfg, s, store); err != nil {
			if m.closer != nil {
				m.closer.Close()
			}
			return nil, fmt.Errorf("tlsauto: %w", err)
		}
		solver = m.dns01
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.cache, m.magic = newCertmagic(cfg, s, store, solver, m.emit(cfg.OnEvent))
	return m, nil
}

// Start loads the certificates of every domain from storage, or obtains
// them, and returns once each domain has a valid certificate. Failed
// attempts are retried with backoff until ctx ends, except when the CA
// rejects the request for good (a rejected identifier, say). Renewal goes on
// in the background after Start returns, until Close.
func (m *Manager) Start(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	unwatch := context.AfterFunc(m.ctx, stop) // Close interrupts Start
	defer unwatch()
	// The DNS-01 solver takes its lease in storage and sweeps challenge
	// records that members which died left behind.
	if m.dns01 != nil {
		if err := m.dns01.Start(ctx); err != nil {
			return fmt.Errorf("tlsauto: %w", err)
		}
	}

	errs := make([]error, len(m.s.domains))
	certs := make([]*tls.Certificate, len(m.s.domains))
	sem := make(chan struct{}, startConcurrency)
	var wg sync.WaitGroup
	for i, name := range m.s.domains {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			certs[i], errs[i] = m.manageOne(ctx, name)
		})
	}
	wg.Wait()
	// One new snapshot for all names: publishing them one by one would copy
	// the snapshot once per name.
	m.served.setMany(m.s.domains, certs)
	// Follow storage even when some names failed: what other members
	// obtain for them is served as soon as it is stored.
	m.syncOnce.Do(func() {
		m.wg.Go(func() { m.syncLoop(m.ctx) })
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tlsauto: %w", err)
	}
	return nil
}

// startConcurrency bounds how many names Start brings under management at
// once, so that thousands of names do not all hit storage together.
const startConcurrency = 64

// manageOne brings one name under management, retrying until ctx ends, and
// returns the certificate to serve for it.
func (m *Manager) manageOne(ctx context.Context, name string) (*tls.Certificate, error) {
	backoff := time.Second
	for {
		err := m.magic.ManageSync(ctx, []string{name})
		if err == nil {
			if c := m.cached(name); c != nil {
				return c, nil
			}
			c, lerr := m.load(ctx, name)
			if lerr == nil {
				return c, nil
			}
			err = fmt.Errorf("loading the certificate to serve it: %w", lerr)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w (last attempt: %v)", name, ctx.Err(), err)
		}
		if permanent(err) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		m.log.Warn("could not get certificate; will retry", "name", name, "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s: %w (last attempt: %v)", name, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
}

// permanent reports whether an error is the CA's final word on a request,
// which retrying cannot change.
func permanent(err error) bool {
	var p acme.Problem
	if !errors.As(err, &p) {
		return false
	}
	switch p.Type {
	case acme.ProblemTypeRejectedIdentifier, acme.ProblemTypeUnsupportedIdentifier,
		acme.ProblemTypeMalformed, acme.ProblemTypeExternalAccountRequired,
		acme.ProblemTypeInvalidContact, acme.ProblemTypeUnsupportedContact,
		acme.ProblemTypeBadPublicKey, acme.ProblemTypeBadSignatureAlgorithm,
		acme.ProblemTypeUserActionRequired:
		return true
	}
	return false
}

// TLSConfig returns a TLS configuration that serves the Manager's
// certificates, for http.Server.TLSConfig or tls.NewListener. It offers
// HTTP/2 and HTTP/1.1 and requires TLS 1.2 or later; callers may change it.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: m.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// Renew renews the certificate of a managed name now, whatever its
// remaining lifetime, and serves the new certificate when it returns nil.
// Other members of the fleet pick the new certificate up from storage.
func (m *Manager) Renew(ctx context.Context, name string) error {
	n, err := normalizeDomain(name)
	if err != nil || !slices.Contains(m.s.domains, n) {
		return fmt.Errorf("tlsauto: Renew: %q is not one of the managed names %v", name, m.s.domains)
	}
	if err := m.magic.RenewCertSync(ctx, n, true); err != nil {
		return fmt.Errorf("tlsauto: renewing %s: %w", n, err)
	}
	return nil
}

// Domains returns the managed names in normalized form.
func (m *Manager) Domains() []string { return append([]string(nil), m.s.domains...) }

// Close stops renewals and all background work of the Manager and releases
// the storage it opened itself. Storage given in Config is left open. Close
// is safe to call more than once.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.wg.Wait()
		m.cache.Stop()
		if m.dns01 != nil {
			// What it cannot delete, other members sweep.
			if err := m.dns01.Close(); err != nil {
				m.log.Warn("cleaning up DNS-01 challenge records", "error", err)
			}
		}
		if m.closer != nil {
			m.closeErr = m.closer.Close()
		}
	})
	return m.closeErr
}
