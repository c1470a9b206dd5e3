package dns01

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/dnsprovider"
)

// Config configures a Solver. DNS and Storage are required; every other
// field has a working zero value, given in its comment. New rejects values
// out of the documented ranges with an error naming the field.
type Config struct {
	// DNS writes the challenge records. Required. The Solver wraps it in
	// dnsprovider.WithRetry with the Retry policy, unless it already is or
	// wraps such a provider (see dnsprovider.HasRetry).
	DNS dnsprovider.Provider

	// Storage is the storage the fleet shares (any certmagic.Storage): the
	// Solver keeps its journal, its lease and its locks there. Required.
	Storage Storage

	// Resolvers are recursive DNS servers, each an IP address or host name
	// with an optional port (53 by default): "192.0.2.53", "[2001:db8::53]:53",
	// "127.0.0.1:5353". Zones, CNAME delegations and nameserver addresses are
	// looked up through them, and propagation is checked through them under
	// PropagationResolvers. Default: the system's resolvers
	// (/etc/resolv.conf).
	Resolvers []string

	// NameserverPort is the port authoritative nameservers are queried on.
	// Default: 53. Tests that run nameservers on other ports set it.
	NameserverPort int

	// Propagation says which servers must serve a record before the CA is
	// asked to validate it. Default: PropagationAuto (every authoritative
	// nameserver, or the resolvers where the nameservers cannot be
	// reached).
	Propagation Propagation

	// PropagationDelay is waited after a record is written, before the
	// first check. Default: 0.
	PropagationDelay time.Duration

	// PropagationTimeout bounds the checks of one record. Default: 2
	// minutes.
	PropagationTimeout time.Duration

	// TTL is the TTL of the challenge records. Default: 60 seconds.
	TTL time.Duration

	// Retry is the policy for retrying the DNS provider's transient API
	// errors, used when DNS does not retry already. Default: the zero
	// dnsprovider.RetryPolicy (6 attempts within 2 minutes).
	Retry dnsprovider.RetryPolicy

	// OwnerLease is how long the Solver's lease in Storage lasts; it renews
	// it every third of that while it runs. Once a Solver's lease has
	// lapsed (its process died without Close), any member deletes the
	// challenge records it left: a crash leaves records in the zone for at
	// most OwnerLease plus a sweep. A shorter lease cleans up sooner but
	// writes to Storage more often, and the clocks of the fleet's members
	// must agree to within a fraction of it. Default: 1 minute; minimum
	// 100 ms; maximum 1 hour.
	OwnerLease time.Duration

	// OnPropagated, if set, is called each time a challenge record was
	// found on every server the propagation check asks, with the time
	// since the record was journaled (just before it was written); not
	// called when the check is skipped. For metrics; it must not block.
	OnPropagated func(time.Duration)

	// SweepInterval is how often the Solver looks for records left by
	// members that died; it also sweeps just after a lease it saw is due
	// to lapse. Default: 1 minute; minimum 100 ms; maximum 1 hour.
	SweepInterval time.Duration

	// Logger receives the Solver's logs. Default: slog.Default().
	Logger *slog.Logger
}

// withDefaults validates c and fills in its defaults. Each error names the
// field.
func (c Config) withDefaults() (Config, *lookup, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("dns01.Config.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if isNil(c.DNS) {
		bad("DNS", "a DNS provider is required")
	}
	if isNil(c.Storage) {
		bad("Storage", "the storage the fleet shares is required (any certmagic.Storage)")
	}
	l := &lookup{}
	var err error
	if l.nsPort, err = portString(c.NameserverPort, 53); err != nil {
		bad("NameserverPort", "%v", err)
	}
	for i, r := range c.Resolvers {
		addr, err := resolverAddr(r)
		if err != nil {
			bad(fmt.Sprintf("Resolvers[%d]", i), "%v", err)
			continue
		}
		l.resolvers = append(l.resolvers, addr)
	}
	if c.Propagation, err = ParsePropagation(string(c.Propagation)); err != nil {
		bad("Propagation", "%v", err)
	}
	if c.Propagation == PropagationResolvers && len(c.Resolvers) == 0 {
		bad("Propagation", "%q needs Resolvers to be set", PropagationResolvers)
	}
	for _, d := range []struct {
		field    string
		v        *time.Duration
		def      time.Duration
		min, max time.Duration // max 0: no maximum
	}{
		{"PropagationDelay", &c.PropagationDelay, 0, 0, 0},
		{"PropagationTimeout", &c.PropagationTimeout, 2 * time.Minute, time.Millisecond, 0},
		{"TTL", &c.TTL, time.Minute, time.Second, 0},
		{"OwnerLease", &c.OwnerLease, time.Minute, 100 * time.Millisecond, time.Hour},
		{"SweepInterval", &c.SweepInterval, time.Minute, 100 * time.Millisecond, time.Hour},
	} {
		switch {
		case *d.v < 0:
			bad(d.field, "%v is negative: use 0 for the default (%v)", *d.v, d.def)
		case *d.v == 0:
			*d.v = d.def
		case *d.v < d.min:
			bad(d.field, "%v is too short: use at least %v, or 0 for the default (%v)", *d.v, d.min, d.def)
		case d.max > 0 && *d.v > d.max:
			bad(d.field, "%v is too long: use at most %v, or 0 for the default (%v)", *d.v, d.max, d.def)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if err := errors.Join(errs...); err != nil {
		return c, nil, err
	}
	if len(l.resolvers) == 0 {
		// Read when the Solver is made, so that a missing resolv.conf is
		// reported at once.
		if l.resolvers, err = systemResolvers(); err != nil {
			return c, nil, fmt.Errorf("dns01.Config.Resolvers: not set, and the system's resolvers cannot be read (%w): set Resolvers", err)
		}
	}
	return c, l, nil
}

// isNil reports whether v is nil or a nil pointer in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// resolverAddr validates a resolver, "host" or "host:port", and returns
// "host:port".
func resolverAddr(r string) (string, error) {
	host, port := r, "53"
	if h, p, err := net.SplitHostPort(r); err == nil {
		host, port = h, p
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if _, ok := dns.IsDomainName(host); !ok || strings.ContainsAny(host, " \t/:@") || host == "" {
			return "", fmt.Errorf("%q is not an IP address or host name with an optional port, such as 192.0.2.53 or 127.0.0.1:5353", r)
		}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("%q has an invalid port", r)
	}
	return net.JoinHostPort(host, port), nil
}

// Solver is certfleet's ACME DNS-01 challenge solver: an acmez.Solver (with
// Wait) to give certmagic as its ACMEIssuer.DNS01Solver.
//
// For each challenge it follows CNAME records at the _acme-challenge name
// (delegation to another zone), finds the zone that holds the target name
// and its authoritative nameservers, journals the record in the shared
// storage, takes the fleet-wide lock on the record name, and writes the TXT
// record through the provider, retrying transient errors. Wait then polls
// the nameservers directly (see Propagation), fast at first. CleanUp
// deletes the record and its journal entry.
//
// A Solver holds a lease in the storage while it runs. When a member dies
// between Present and CleanUp, its lease lapses and any other member deletes
// the records its journal names: a crash does not leave records behind for
// longer than OwnerLease plus a sweep.
//
// Start the Solver (or let the first Present start it) and Close it when
// done. It is safe for concurrent use.
type Solver struct {
	cfg    Config
	dns    dnsprovider.Provider
	lookup *lookup
	locks  *recordLocks
	log    *slog.Logger
	id     string

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	startMu sync.Mutex // serializes starting
	started time.Time  // zero until started

	warned sync.Map // unreachable nameservers already logged, by zone and addresses

	mu     sync.Mutex
	closed bool
	active map[string]*presented // by challenge key
	ops    sync.WaitGroup        // calls in flight
	loops  sync.WaitGroup        // background goroutines

	closeOnce sync.Once
	closeErr  error
}

// presented is a record the Solver wrote for a challenge and has not yet
// cleaned up.
type presented struct {
	entry journalEntry
	zone  *zoneInfo
}

var (
	_ acmez.Solver = (*Solver)(nil)
	_ acmez.Waiter = (*Solver)(nil)
)

// New validates cfg and returns a Solver. It does no network or storage
// I/O.
func New(cfg Config) (*Solver, error) {
	cfg, l, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, fmt.Errorf("dns01: generating the solver's id: %w", err)
	}
	p := cfg.DNS
	if !dnsprovider.HasRetry(p) {
		p = dnsprovider.WithRetry(p, cfg.Retry)
	}
	s := &Solver{
		cfg:    cfg,
		dns:    p,
		lookup: l,
		locks:  &recordLocks{storage: cfg.Storage},
		log:    cfg.Logger.With("solver", id),
		id:     id,
		active: make(map[string]*presented),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// ErrClosed is returned by a Solver's methods after Close.
var ErrClosed = errors.New("dns01: the DNS-01 solver is closed")

// begin starts a call: it fails after Close, and returns a context that
// Close cancels too.
func (s *Solver) begin(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	s.ops.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel(); s.ops.Done() }, nil
}

// Start stores the Solver's lease and starts its background work: renewing
// the lease, and sweeping the records of members that died, at once and
// then periodically. It returns once the lease is stored; Close stops it.
// Calling Start again does nothing more.
func (s *Solver) Start(ctx context.Context) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return s.ensureStarted(ctx)
}

func (s *Solver) ensureStarted(ctx context.Context) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if !s.started.IsZero() {
		return nil
	}
	s.started = time.Now()
	if err := s.renewLease(ctx); err != nil {
		s.started = time.Time{}
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.loops.Go(s.renewLoop)
	s.loops.Go(s.sweepLoop)
	s.log.Debug("DNS-01 solver started", "lease", s.cfg.OwnerLease)
	return nil
}

// renewLoop renews the lease every third of OwnerLease until Close.
func (s *Solver) renewLoop() {
	every := s.cfg.OwnerLease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, every)
			err := s.renewLease(ctx)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("could not renew the DNS-01 solver's lease; other members may delete its records if this persists", "error", err)
			}
		}
	}
}

// sweepLoop sweeps at once, then every SweepInterval, or sooner when a
// lease that guards journal entries is about to lapse.
func (s *Solver) sweepLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		res, err := s.sweep(s.ctx)
		if err != nil && s.ctx.Err() == nil {
			s.log.Warn("sweeping the DNS-01 journal", "removed", res.removed, "failed", res.failed, "error", err)
		}
		next := s.cfg.SweepInterval
		if res.next > 0 {
			next = min(next, res.next+max(res.next/20, 50*time.Millisecond))
		}
		t.Reset(next)
	}
}

// Sweep deletes now the records that members which died left behind (see
// Solver), and reports how many it deleted. It is what the Solver does at
// Start and periodically; it returns at once when another member is
// sweeping.
func (s *Solver) Sweep(ctx context.Context) (removed int, err error) {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer end()
	if err := s.ensureStarted(ctx); err != nil {
		return 0, err
	}
	res, err := s.sweep(ctx)
	return res.removed, err
}

// challengeKey identifies a challenge among those presented.
func challengeKey(name, value string) string { return name + "\x00" + value }

func (s *Solver) isActive(e journalEntry) bool {
	name := e.For
	if name == "" {
		name = e.Name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.active[challengeKey(name, e.Value)]
	return ok
}

// Present writes the TXT record of chal (see Solver).
func (s *Solver) Present(ctx context.Context, chal acme.Challenge) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if err := s.ensureStarted(ctx); err != nil {
		return err
	}
	name := canonicalFQDN(chal.DNS01TXTRecordName())
	value := chal.DNS01KeyAuthorization()
	target, err := s.lookup.followCNAME(ctx, name)
	if err != nil {
		return fmt.Errorf("dns01: DNS-01 for %s: %w", strings.TrimSuffix(name, "."), err)
	}
	zone, err := s.lookup.zoneFor(ctx, target, s.cfg.Propagation.asksNameservers())
	if err != nil {
		return fmt.Errorf("dns01: DNS-01 for %s: %w", strings.TrimSuffix(name, "."), err)
	}
	e := journalEntry{Owner: s.id, Zone: zone.name, Name: target, Value: value, Created: time.Now()}
	if target != name {
		e.For = name
	}
	key := challengeKey(name, value)
	p := &presented{entry: e, zone: zone}
	s.mu.Lock()
	s.active[key] = p
	s.mu.Unlock()

	if err := s.write(ctx, e); err != nil {
		s.mu.Lock()
		delete(s.active, key)
		s.mu.Unlock()
		return err
	}
	attrs := []any{"name", e.Name, "zone", e.Zone}
	if e.For != "" {
		attrs = append(attrs, "cname_from", e.For)
	}
	s.log.DebugContext(ctx, "presented DNS-01 challenge record", attrs...)
	return nil
}

// write journals e and writes its record, holding the record's lock. When
// the write fails, it deletes whatever the failed write may have created
// and, if that works, the journal entry; otherwise the entry stays for a
// later sweep.
func (s *Solver) write(ctx context.Context, e journalEntry) error {
	release, err := s.locks.acquire(ctx, e.Name)
	if err != nil {
		return err
	}
	defer release()
	if err := s.writeEntry(ctx, e); err != nil {
		return err
	}
	_, err = s.dns.AppendRecords(ctx, e.Zone, []libdns.Record{e.record(s.cfg.TTL)})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("dns01: writing the TXT record %s: %w", e.Name, err)
	// A permanent refusal wrote nothing, unless it says that part of the
	// write was kept (dnsprovider.Mirror); anything else may have.
	var oe *dnsprovider.OpError
	applied := ctx.Err() != nil || !errors.As(err, &oe) || oe.Temporary || errors.Is(err, dnsprovider.ErrPartialWrite)
	if applied {
		undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeCleanupMax)
		defer cancel()
		if _, derr := s.dns.DeleteRecords(undo, e.Zone, []libdns.Record{e.record(0)}); derr != nil {
			return err // the journal entry stays: a sweep deletes the record
		}
	}
	_ = s.cfg.Storage.Delete(context.WithoutCancel(ctx), e.key())
	return err
}

// Wait returns once the record of chal is served as the propagation policy
// requires, or fails with a *PropagationError naming, for each server that
// does not serve it, the address queried, its last answer and the last
// error: after PropagationTimeout, or at once when the policy needs
// nameservers that cannot be reached (ErrNameserversUnreachable).
func (s *Solver) Wait(ctx context.Context, chal acme.Challenge) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	_, p := s.presentedFor(chal)
	if p == nil {
		return fmt.Errorf("dns01: Wait for %s: no record was presented for this challenge", chal.DNS01TXTRecordName())
	}
	if err := s.waitPropagated(ctx, p); err != nil {
		return err
	}
	if s.cfg.OnPropagated != nil && s.cfg.Propagation != PropagationSkip {
		s.cfg.OnPropagated(time.Since(p.entry.Created))
	}
	return nil
}

// presentedFor returns the key and the record presented for chal; nil when
// none was (or it was cleaned up).
func (s *Solver) presentedFor(chal acme.Challenge) (string, *presented) {
	key := challengeKey(canonicalFQDN(chal.DNS01TXTRecordName()), chal.DNS01KeyAuthorization())
	s.mu.Lock()
	defer s.mu.Unlock()
	return key, s.active[key]
}

// CleanUp deletes the record of chal and its journal entry. A challenge that
// was not presented (or already cleaned up) needs nothing. When the delete
// fails, the entry stays in the journal and a later sweep retries it.
func (s *Solver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	key, p := s.presentedFor(chal)
	if p == nil {
		return nil
	}
	// certmagic calls CleanUp without a deadline; the retry policy and this
	// bound keep it from hanging.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Retry.WithDefaults().MaxElapsed+30*time.Second)
	defer cancel()
	err = s.removeRecord(ctx, p.entry)
	s.mu.Lock()
	delete(s.active, key)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.DebugContext(ctx, "cleaned up DNS-01 challenge record", "name", p.entry.Name, "zone", p.entry.Zone)
	return nil
}

// Close is Shutdown bounded by 10 seconds.
func (s *Solver) Close() error { return s.Shutdown(context.Background()) }

// Shutdown stops the Solver's background work, deletes the records it still
// has in the journal (until ctx ends or for at most 10 seconds; what
// remains is swept by other members), and releases its lease. Calls in
// flight are canceled. Only the first call does the work; later calls
// return its result.
func (s *Solver) Shutdown(ctx context.Context) error {
	ctxDone := ctx
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.ops.Wait()
		s.loops.Wait()
		s.startMu.Lock()
		started := !s.started.IsZero()
		s.startMu.Unlock()
		if !started {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeCleanupMax)
		defer cancel()
		stop := context.AfterFunc(ctxDone, cancel)
		defer stop()
		s.mu.Lock()
		clear(s.active)
		s.mu.Unlock()
		keys, err := s.listEntries(ctx, s.id+"_")
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		for _, key := range keys {
			e, err := s.loadEntry(ctx, key)
			if err != nil {
				continue
			}
			if err := s.removeRecord(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
		// Without a lease, whatever is left is any member's to sweep.
		if err := s.cfg.Storage.Delete(ctx, ownerKey(s.id)); err != nil {
			errs = append(errs, fmt.Errorf("dns01: releasing the solver's lease: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
