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
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
)

// Manager obtains, renews and serves the certificates of one Config. Create
// it with New, call Start, serve with TLSConfig, and Close it when done.
//
// Every managed name stays under management from Start (or Manage) until
// Unmanage or Close: a name whose certificate cannot be had yet is retried
// in the background, and a certificate another member of the fleet stores
// for it is served as soon as the Manager sees it.
type Manager struct {
	s       settings
	magic   *certmagic.Config
	cache   *certmagic.Cache
	storage certmagic.Storage
	log     *slog.Logger
	dns01   *dns01.Solver
	onEvent func(Event)
	gate    *caGate  // the fleet's CA back-off and order budget
	tickets *tickets // the fleet's session ticket keys; nil unless TicketsShared

	// served is what the handshake path reads.
	served   served
	stats    stats
	member   string                    // this process, as Status and storage records name it
	lastSync atomic.Pointer[time.Time] // last certificate read from storage
	chains   sync.Map                  // chains that verified: digest → when the first expires (verify.go)

	noteMu   sync.Mutex
	notes    map[string]string // names whose Status notes are due → source (status.go)
	noteWake chan struct{}

	// closer releases storage the Manager opened itself (the default).
	closer io.Closer

	// ctx ends when Shutdown begins; every background activity ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines
	begin  sync.Once      // starts the solver's lease and the storage sync
	sem    chan struct{}  // bounds concurrent attempts

	mu      sync.Mutex
	names   map[string]*entry // managed names
	keys    map[string]string // storage keys of their certificates and keys → name
	changed chan struct{}     // closed and replaced when an entry's state changes

	shutdownOnce sync.Once
	shutdownDone chan struct{} // closed when shutdown is complete
	shutdownErr  error
}

// New validates cfg and returns a Manager for it. It does no network I/O
// and starts nothing; the Manager opens the default storage directory when
// cfg.Storage is nil. Start (or Manage) begins the work: the DNS-01
// solver's lease and sweeping in storage, following storage for
// certificates that other members store, and obtaining or loading
// certificates, which certmagic's maintenance then renews. Close or
// Shutdown ends all of it.
func New(cfg Config) (*Manager, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	m := &Manager{
		s:            s,
		member:       memberID(),
		log:          s.logger.With("component", "certfleet"),
		onEvent:      cfg.OnEvent,
		sem:          make(chan struct{}, attemptConcurrency),
		names:        make(map[string]*entry),
		noteWake:     make(chan struct{}, 1),
		keys:         make(map[string]string),
		changed:      make(chan struct{}),
		shutdownDone: make(chan struct{}),
	}
	store := cfg.Storage
	if store == nil {
		st, closer, err := defaultStorage()
		if err != nil {
			return nil, fmt.Errorf("tlsauto: Storage: %w", err)
		}
		store, m.closer = st, closer
	}
	m.storage = observeStorage(store, &m.stats)
	m.gate = newCAGate(m.storage, m.member, m.log, s.orderBudget, s.orderBudgetWindow)
	if s.tickets.mode == TicketsShared {
		m.tickets = newTickets(s.tickets, m.storage, m.log)
	}
	cfg.DNS = dnsprovider.Observe(cfg.DNS, m.observeDNS(dnsprovider.Name(cfg.DNS)))
	if m.dns01, err = newSolver(cfg, s, m.storage, m.stats.propagation.observe); err != nil {
		if m.closer != nil {
			m.closer.Close()
		}
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	if m.cache, m.magic, err = newCertmagic(s, m.storage, m.dns01, m.emit, m.observeACME, m.gateRequest); err != nil {
		if m.closer != nil {
			m.closer.Close()
		}
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// attemptConcurrency bounds how many names are being obtained or loaded at
// once, so that thousands of names do not all hit storage and the CA
// together.
const attemptConcurrency = 64

// Start brings every name of Config.Domains under management and returns
// nil once each is served, loading certificates from storage or obtaining
// them. When ctx ends first, or the CA refuses a name for good, Start
// returns an error naming each name not served with its last error; the
// names stay under management all the same and are retried in the
// background (with capped, jittered backoff that honours the CA's
// Retry-After) until they are served, except those the CA refused for
// good. Renewal goes on in the background until Close.
//
// Calling Start again waits for the same names again.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.alive(); err != nil {
		return err
	}
	m.start(ctx)
	if m.s.shareNames {
		if err := m.reconcileShared(ctx); err != nil {
			m.log.Warn("reading the shared set of names", "error", err)
		}
	}
	m.add(m.s.domains, true)
	return m.await(ctx, m.s.domains)
}

// start begins the background work common to every name, once.
func (m *Manager) start(ctx context.Context) {
	m.begin.Do(func() {
		// The DNS-01 solver takes its lease in storage and sweeps challenge
		// records that members which died left behind. If storage cannot
		// be reached now, the solver starts with the first challenge.
		if err := m.dns01.Start(ctx); err != nil {
			m.log.Warn("starting the DNS-01 solver; will retry with the first challenge", "error", err)
		}
		m.wg.Go(func() { m.syncLoop(m.ctx) })
		m.wg.Go(func() { m.noteLoop(m.ctx) })
		if m.tickets != nil {
			// The fleet's keys are read (or made) before the first name is
			// served, so that its first tickets resume at every member.
			next, err := m.tickets.refresh(ctx)
			m.wg.Go(func() { m.tickets.run(m.ctx, next, err) })
		}
		m.wg.Go(func() { m.expiryLoop(m.ctx) })
	})
}

// alive returns an error once Shutdown has begun.
func (m *Manager) alive() error {
	if m.ctx.Err() != nil {
		return errors.New("tlsauto: the Manager is shut down")
	}
	return nil
}

// TLSConfig returns a TLS configuration that serves the Manager's
// certificates, for http.Server.TLSConfig or tls.NewListener. It offers
// HTTP/2 and HTTP/1.1, requires TLS 1.2 or later, and handles session
// tickets as Config.SessionTickets says (see InstallSessionTickets);
// callers may change it.
func (m *Manager) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		GetCertificate: m.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
	m.InstallSessionTickets(cfg)
	return cfg
}

// Renew renews the certificate of a managed name now, whatever its
// remaining lifetime, and serves the new certificate when it returns nil.
// Other members of the fleet pick the new certificate up from storage.
// Close cancels a renewal in progress.
func (m *Manager) Renew(ctx context.Context, name string) error {
	n, err := normalizeDomain(name)
	if err != nil || !m.isManaged(n) {
		return fmt.Errorf("tlsauto: Renew: %q is not one of the managed names %v", name, m.Domains())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	if err := m.magic.RenewCertSync(ctx, n, true); err != nil {
		return fmt.Errorf("tlsauto: renewing %s: %w", n, err)
	}
	return nil
}

// Domains returns the managed names in normalized form: those of
// Config.Domains in their order, then those added with Manage (or, with
// Config.ShareNames, by any member of the fleet), sorted.
func (m *Manager) Domains() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := slices.Clone(m.s.domains)
	var added []string
	for n, e := range m.names {
		if !e.fixed {
			added = append(added, n)
		}
	}
	slices.Sort(added)
	return append(names, added...)
}

// CloseTimeout bounds how long Close waits for background work to stop and
// for the Manager's challenge records to be deleted.
const CloseTimeout = 30 * time.Second

// Shutdown stops renewals, retries and all background work of the Manager,
// deletes the DNS-01 challenge records it still has (what it cannot delete
// in time, other members sweep), and releases the storage it opened itself;
// storage given in Config is left open. It returns when all of that is
// done, or with ctx's error when ctx ends first, in which case the rest
// goes on and a later Shutdown or Close waits for it. Shutdown is safe to
// call more than once and from several goroutines.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.shutdownOnce.Do(func() {
		m.cancel()
		go m.shutdown(ctx) // owned by the Manager: Shutdown and Close wait for it
	})
	select {
	case <-m.shutdownDone:
		return m.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("tlsauto: shutdown: %w", ctx.Err())
	}
}

// shutdown does Shutdown's work; ctx bounds the deletion of challenge
// records.
func (m *Manager) shutdown(ctx context.Context) {
	defer close(m.shutdownDone)
	m.wg.Wait()
	m.cache.Stop()
	if err := m.dns01.Shutdown(ctx); err != nil {
		m.log.Warn("cleaning up DNS-01 challenge records", "error", err)
	}
	if m.closer != nil {
		m.shutdownErr = m.closer.Close()
	}
}

// Close is Shutdown bounded by CloseTimeout.
func (m *Manager) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	return m.Shutdown(ctx)
}
