package tlsauto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/backoff"
)

// entry is one managed name and the goroutine that brings it under
// management. Fields after mu-guarded are read and written with Manager.mu.
type entry struct {
	name   string
	fixed  bool // from Config.Domains: Unmanage refuses it
	ctx    context.Context
	cancel context.CancelFunc
	keys   []string      // storage keys of its certificates and private keys (one pair per CA)
	wake   chan struct{} // a value asks the goroutine to try again now
	done   chan struct{} // closed when the goroutine has returned

	// mu-guarded
	managed     bool  // the last attempt succeeded: certmagic renews it
	gaveUp      bool  // the CA refused the name for good
	lastErr     error // of the last failed attempt
	attempts    int
	failures    int // consecutive failed attempts (or renewals, once managed)
	lastAttempt time.Time
	nextRetry   time.Time
	obtainedBy  string    // for Status: who obtained the served certificate
	renewAt     time.Time // for Status: when the served certificate renews
	renewReason string
	info        *CertificateInfo // for Status: describes infoOf
	infoOf      *tls.Certificate
}

// retryPolicy spaces the attempts for a name that cannot be had yet.
var retryPolicy = backoff.Policy{Base: time.Second, Max: 5 * time.Minute}

// maxRetryAfter caps how long a CA's Retry-After can hold a name back, so
// that a bogus date does not park it for days.
const maxRetryAfter = 6 * time.Hour

// Manage adds names to the managed set (validated like Config.Domains) and
// returns once each is served, or with an error naming each name not yet
// served when ctx ends first; the names stay under management either way.
// With Config.ShareNames the names are also recorded in the shared storage,
// and every member of the fleet that shares it serves them. Managing a name
// that is already managed is not an error.
func (m *Manager) Manage(ctx context.Context, names ...string) error {
	if err := m.alive(); err != nil {
		return err
	}
	norm, err := normalizeNames("names", names)
	if err != nil {
		return fmt.Errorf("tlsauto: Manage: %w", err)
	}
	m.start(ctx)
	if m.s.shareNames {
		if err := m.shareNames(ctx, norm); err != nil {
			return fmt.Errorf("tlsauto: Manage: %w", err)
		}
	}
	m.add(norm, false)
	return m.await(ctx, norm)
}

// Unmanage stops serving and renewing names. Their certificates stay in
// storage. With Config.ShareNames the names are removed from the shared set
// too, and every member drops them. Names of Config.Domains cannot be
// unmanaged; names that are not managed are ignored.
func (m *Manager) Unmanage(ctx context.Context, names ...string) error {
	if err := m.alive(); err != nil {
		return err
	}
	norm, err := normalizeNames("names", names)
	if err != nil {
		return fmt.Errorf("tlsauto: Unmanage: %w", err)
	}
	for _, n := range norm {
		if m.isFixed(n) {
			return fmt.Errorf("tlsauto: Unmanage: %s is one of Config.Domains, which are always managed", n)
		}
	}
	if m.s.shareNames {
		if err := m.unshareNames(ctx, norm); err != nil {
			return fmt.Errorf("tlsauto: Unmanage: %w", err)
		}
	}
	return m.remove(ctx, norm)
}

// add puts names under management, starting a goroutine for each name that
// is not managed yet.
func (m *Manager) add(names []string, fixed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	issuers := m.issuerKeys()
	for _, name := range names {
		if e, ok := m.names[name]; ok {
			e.fixed = e.fixed || fixed
			continue
		}
		ctx, cancel := context.WithCancel(m.ctx)
		e := &entry{name: name, fixed: fixed, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{})}
		for _, issuer := range issuers {
			e.keys = append(e.keys, certmagic.StorageKeys.SiteCert(issuer, name), certmagic.StorageKeys.SitePrivateKey(issuer, name))
		}
		m.names[name] = e
		for _, k := range e.keys {
			m.keys[k] = name
		}
		m.wg.Go(func() { m.work(e) })
	}
}

// remove takes names out of management: their goroutines end, and their
// certificates leave the handshake path and certmagic's cache.
func (m *Manager) remove(ctx context.Context, names []string) error {
	var gone []*entry
	m.mu.Lock()
	for _, name := range names {
		e, ok := m.names[name]
		if !ok || e.fixed {
			continue
		}
		delete(m.names, name)
		for _, k := range e.keys {
			delete(m.keys, k)
		}
		e.cancel()
		gone = append(gone, e)
	}
	m.notifyLocked()
	m.mu.Unlock()
	for _, e := range gone {
		// A goroutine still trying forgets its name as it returns (see
		// work); waiting for it makes Unmanage return with the name gone.
		select {
		case <-e.done:
			m.forget(e.name)
		case <-ctx.Done():
			return fmt.Errorf("tlsauto: Unmanage: %w", ctx.Err())
		}
	}
	return nil
}

// forget removes a name that is no longer managed from the handshake path
// and certmagic's cache (which stops renewing it).
func (m *Manager) forget(name string) {
	m.served.remove(name)
	m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: name}})
}

func (m *Manager) isManaged(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.names[name]
	return ok
}

func (m *Manager) isFixed(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.names[name]
	return ok && e.fixed
}

// issuerKeys returns the issuer keys of the Manager's CAs, in order: where
// each CA's certificates and accounts are stored.
func (m *Manager) issuerKeys() []string {
	keys := make([]string, len(m.magic.Issuers))
	for i, iss := range m.magic.Issuers {
		keys[i] = iss.IssuerKey()
	}
	return keys
}

// notifyLocked wakes every waiter on the entries' state. Called with m.mu.
func (m *Manager) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// await waits until every name is ready (an attempt succeeded: it is
// served with a certificate valid now and not overdue) or refused for good,
// or ctx ends.
func (m *Manager) await(ctx context.Context, names []string) error {
	// After a change, the pending names are looked at again only up to the
	// first one still pending (it must be waited for anyway), so that
	// thousands of names coming under management one by one do not make
	// this quadratic; all of them are looked at once that one is done or
	// ctx ends.
	pending := slices.Clone(names)
	var errs []error
	for {
		m.mu.Lock()
		done := ctx.Err() != nil
		still := pending[:0]
		for i, name := range pending {
			e, ok := m.names[name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: no longer managed", name))
			case e.gaveUp:
				errs = append(errs, fmt.Errorf("%s: %w", name, e.lastErr))
			case !e.managed && done:
				errs = append(errs, notServed(e, ctx.Err()))
			case !e.managed:
				still = append(still, pending[i:]...)
			default:
				continue
			}
			if len(still) > 0 {
				break
			}
		}
		pending = still
		changed := m.changed
		m.mu.Unlock()
		if len(pending) == 0 {
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("tlsauto: %w", err)
			}
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
		case <-m.ctx.Done():
			return m.alive()
		}
	}
}

// notServed describes a name that is not served when ctx ended.
func notServed(e *entry, ctxErr error) error {
	if e.lastErr == nil {
		return fmt.Errorf("%s: not served yet: %w (no attempt has finished)", e.name, ctxErr)
	}
	return fmt.Errorf("%s: not served yet: %w (last attempt, %d so far: %w; still retrying)", e.name, ctxErr, e.attempts, e.lastErr)
}

// work brings one name under management: it tries until an attempt
// succeeds, the CA refuses the name for good, or the name is unmanaged.
// Once an attempt succeeds, certmagic's maintenance renews the
// certificate.
func (m *Manager) work(e *entry) {
	defer close(e.done)
	defer func() {
		if !m.isManaged(e.name) && m.ctx.Err() == nil {
			m.forget(e.name)
		}
	}()
	healedAt := 0
	for attempt := 1; ; attempt++ {
		m.mu.Lock()
		e.lastAttempt = time.Now()
		m.mu.Unlock()
		err := m.attempt(e.ctx, e.name)
		if e.ctx.Err() != nil {
			return
		}
		if err == nil {
			m.mu.Lock()
			e.managed, e.lastErr, e.attempts, e.failures, e.nextRetry = true, nil, attempt, 0, time.Time{}
			m.notifyLocked()
			m.mu.Unlock()
			return
		}
		// Held back before the CA (its back-off, the fleet's order
		// budget): not a failure; try again at the time given.
		if we := (*WaitError)(nil); errors.As(err, &we) {
			if !m.holdBack(e, we) {
				return
			}
			attempt--
			continue
		}
		// Unusable stored data is moved aside and obtained anew at once
		// (once in a row: if healing does not help, back off).
		if healedAt != attempt-1 || attempt == 1 {
			if m.heal(e.ctx, e.name) {
				healedAt = attempt
				continue
			}
		}
		final := permanent(err)
		wait := retryPolicy.Delay(attempt)
		if ra, ok := retryAfter(err, time.Now()); ok && ra > wait {
			wait = min(ra, maxRetryAfter)
		}
		m.mu.Lock()
		e.lastErr, e.attempts, e.gaveUp = err, attempt, final
		e.failures++
		e.nextRetry = time.Now().Add(wait)
		if final {
			e.nextRetry = time.Time{}
		}
		m.notifyLocked()
		m.mu.Unlock()
		if final {
			m.log.Error("the CA refused the name for good; not retrying it", "name", e.name, "attempt", attempt, "error", err)
			return
		}
		m.log.Warn("could not get a certificate; will retry", "name", e.name, "attempt", attempt, "retry_in", wait, "error", err)
		if !m.sleepRetry(e, wait) {
			return
		}
	}
}

// sleepRetry waits wait, or until the name's goroutine is asked to try
// again now. It reports false when the name's context ended.
func (m *Manager) sleepRetry(e *entry, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-e.ctx.Done():
		return false
	case <-e.wake:
	case <-t.C:
	}
	return true
}

// attempt brings name under certmagic's management, which loads its
// certificate from storage or obtains it, and serves the newest certificate
// for it that verifies. It succeeds only when that certificate is valid now
// and not due for a renewal that failed: a name served with an expiring
// (or, with ServeExpired, expired) certificate because the CA cannot be
// reached is not ready, and is tried again.
func (m *Manager) attempt(ctx context.Context, name string) error {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-m.sem }()
	ctx = withImmediate(ctx) // a renewal due now is not spread: Start waits for it
	err := m.magic.ManageSync(ctx, []string{name})
	cert, cm := m.cached(name)
	if cert == nil {
		// certmagic may hold nothing (it failed), or nothing that
		// verifies; another member may have stored a good one.
		if c, lerr := m.load(ctx, name); lerr == nil && m.verify(name, c, time.Now()) == nil {
			cert = c
		}
	}
	if cert != nil {
		m.publish(name, cert, "cache")
	}
	if err != nil {
		return err
	}
	if cm.Leaf == nil {
		return fmt.Errorf("no certificate that verifies for it: %w", m.whyNotServable(name))
	}
	if cm.Expired() || cm.NeedsRenewal(m.magic) {
		if err := m.magic.RenewCertSync(ctx, name, false); err != nil {
			return fmt.Errorf("renewing its certificate, which expires %s: %w", cm.Leaf.NotAfter.UTC().Format(time.RFC3339), err)
		}
		if cert, _ := m.cached(name); cert != nil {
			m.publish(name, cert, "renewal")
		}
	}
	return nil
}

// whyNotServable says why none of certmagic's cached certificates for name
// verifies.
func (m *Manager) whyNotServable(name string) error {
	err := errors.New("certmagic holds no certificate for it")
	for _, c := range m.cache.AllMatchingCertificates(name) {
		tc := c.Certificate
		if verr := m.verify(name, &tc, time.Now()); verr != nil {
			err = verr
		}
	}
	return err
}

// publish serves cert for name, unless it does not verify or name was
// unmanaged meanwhile.
func (m *Manager) publish(name string, cert *tls.Certificate, source string) bool {
	if m.checkServable(name, cert, source) != nil {
		return false
	}
	changed := m.served.set(name, cert)
	if !m.isManaged(name) {
		// Unmanage removed the name between our check and the set, or
		// before it: whichever forget ran first, this one undoes the set.
		m.forget(name)
		return false
	}
	if changed {
		m.queueNote(name, source)
	}
	return changed
}

// retryNow asks the goroutine of a name that is not under certmagic's
// management yet to try again at once: another member stored its
// certificate, which the next attempt loads.
func (m *Manager) retryNow(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.names[name]; ok && !e.managed && !e.gaveUp {
		select {
		case e.wake <- struct{}{}:
		default:
		}
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

// retryAfterDetail finds the time in a CA's "retry after 2026-01-02
// 15:04:05 UTC" problem detail: the ACME client does not keep the
// Retry-After header of error responses, but Let's Encrypt repeats it there.
var retryAfterDetail = regexp.MustCompile(`(?i)retry after (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?: ?(UTC|Z))?`)

// retryAfter returns how long the CA or DNS provider asked to wait before
// the next attempt, if it did.
func retryAfter(err error, now time.Time) (time.Duration, bool) {
	if d, ok := dnsprovider.RetryAfter(err); ok {
		return d, true
	}
	var p acme.Problem
	if !errors.As(err, &p) {
		return 0, false
	}
	sm := retryAfterDetail.FindStringSubmatch(p.Detail)
	if sm == nil {
		return 0, false
	}
	t, perr := time.Parse("2006-01-02 15:04:05", sm[1][:10]+" "+sm[1][11:])
	if perr != nil || !t.After(now) {
		return 0, false
	}
	return t.Sub(now), true
}
