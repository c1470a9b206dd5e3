package tlsauto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/internal/backoff"
)

// To a CA, a fleet is one customer: one ACME account with one set of rate
// limits. The members therefore share, in Storage, under
// certfleet/ca/<issuer key>/<account e-mail>/:
//
//   - backoff: "no new orders until T", written by the member that the CA
//     answered rateLimited (or 503 naming a time, or 5xx several times in a
//     row) and read by every member before each order;
//   - orders: the times of the orders the fleet placed in the last
//     OrderBudgetWindow, and the reservations of names waiting for a slot,
//     read and written under a storage lock, so that the fleet as a whole
//     places at most OrderBudget orders in any window of that length.
//
// Both are checked in certmagic's "cert_obtaining" event, which certmagic
// emits right before it orders and which cancels the attempt when it
// returns an error: the attempt returns a *WaitError, and the name is tried
// again at its time (see Manager.work), not backed off as a failure.
const caPrefix = "certfleet/ca"

// ErrCABackoff is wrapped by the error of an attempt held back because the
// CA asked this account (through any member of the fleet) to send no new
// orders for a while.
var ErrCABackoff = errors.New("the CA asked for no new orders from this account for now")

// ErrOrderBudget is wrapped by the error of an attempt held back because
// the fleet's order budget with the CA (Config.OrderBudget) is spent for
// now; the name has a slot reserved at WaitError.Until, or is told to come
// back then for one.
var ErrOrderBudget = errors.New("the fleet's order budget with the CA is spent for now")

// errRenewalSpread is wrapped by the error of a renewal that maintenance
// found due but that is spread later into the renewal window.
var errRenewalSpread = errors.New("renewal spread over the renewal window")

// WaitError is the error of an attempt to obtain or renew a certificate
// that the Manager held back before it reached the CA. Err is ErrCABackoff
// or ErrOrderBudget; the name is tried again at Until.
type WaitError struct {
	Until  time.Time
	Reason string
	Err    error
}

// Error says why the attempt was held back and until when.
func (e *WaitError) Error() string {
	s := fmt.Sprintf("%v: held back until %s", e.Err, e.Until.UTC().Format(time.RFC3339Nano))
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Unwrap returns e.Err.
func (e *WaitError) Unwrap() error { return e.Err }

// Order budget defaults and bounds: Let's Encrypt's published limit of new
// orders per account.
const (
	DefaultOrderBudget       = 300
	DefaultOrderBudgetWindow = 3 * time.Hour
	maxOrderBudget           = 1_000_000
)

// caAccount is one ACME account: a CA (its issuer key) and an e-mail.
type caAccount struct{ issuer, email string }

func (a caAccount) key(leaf string) string { return path.Join(caPrefix, a.issuer, a.email, leaf) }

func (a caAccount) lockName() string { return "certfleet_ca_" + a.issuer + "_" + a.email }

// backoffRecord is the value stored under an account's backoff key.
type backoffRecord struct {
	Until    time.Time `json:"until"`
	Reason   string    `json:"reason"`
	Member   string    `json:"member"`
	Recorded time.Time `json:"recorded"`
}

// caGate decides, before each order, whether the order may go to the CA
// now.
type caGate struct {
	store  certmagic.Storage
	member string
	log    *slog.Logger
	now    func() time.Time

	budget int           // orders per window; 0: no budget
	window time.Duration // the budget's window, margin included
	grace  time.Duration // how late a reserved slot may still be used

	// certmagic throttles each process to paceN orders per paceW per CA
	// account, after the event: an order that passed the gate but waits
	// there would reach the CA later than the budget recorded it. The gate
	// keeps this process below that pace itself, so certmagic never waits.
	paceN int
	paceW time.Duration

	order  sync.Mutex  // serializes the decisions of this process
	passed []time.Time // this process's recent orders (pace)
	mu     sync.Mutex  // guards known and errs
	known  map[caAccount]backoffRecord
	errs   map[caAccount]int // consecutive rate limits or server errors
}

func newCAGate(store certmagic.Storage, member string, log *slog.Logger, budget int, window time.Duration) *caGate {
	g := &caGate{
		store: store, member: member, log: log, now: time.Now,
		budget: budget,
		paceN:  certmagic.RateLimitEvents, paceW: certmagic.RateLimitEventsWindow,
		known: map[caAccount]backoffRecord{}, errs: map[caAccount]int{},
	}
	// The CA counts an order when it arrives; the gate when it lets the
	// order go, or at the time of the slot the order claims (up to grace
	// later). The margin covers both: the grace, and the time from the
	// gate to the CA (key generation, storage reads, a nonce; seconds on a
	// loaded machine) with clocks that differ a little.
	g.grace = min(window/20, time.Second)
	g.window = window + g.grace + min(window/5, 30*time.Second)
	return g
}

// check returns nil when an order for name may go to the CA of acct now,
// and records it; otherwise a *WaitError. With failover, the CA's back-off
// does not hold the attempt: the next CA is tried.
func (g *caGate) check(ctx context.Context, acct caAccount, name string, failover bool) error {
	g.order.Lock()
	defer g.order.Unlock()
	now := g.now()
	if bo := g.backoff(ctx, acct); now.Before(bo.Until) && !failover {
		return &WaitError{Until: bo.Until, Reason: bo.Reason, Err: ErrCABackoff}
	}
	if g.paceN > 0 && g.paceW > 0 {
		g.passed = slices.DeleteFunc(g.passed, func(t time.Time) bool { return !t.After(now.Add(-g.paceW)) })
		if len(g.passed) >= g.paceN {
			until := g.passed[len(g.passed)-g.paceN].Add(g.paceW)
			return &WaitError{Until: until.Add(backoff.Jitter(g.paceW / time.Duration(g.paceN))), Reason: fmt.Sprintf("this member's pace, %d orders per %v", g.paceN, g.paceW), Err: ErrOrderBudget}
		}
	}
	if g.budget > 0 {
		if err := g.reserve(ctx, acct, name, now); err != nil {
			return err
		}
	}
	g.passed = append(g.passed, now)
	return nil
}

// backoff reads the account's back-off from storage; when storage cannot
// be read, it returns what was read last.
func (g *caGate) backoff(ctx context.Context, acct caAccount) backoffRecord {
	var rec backoffRecord
	v, err := g.store.Load(ctx, acct.key("backoff"))
	if err == nil {
		err = json.Unmarshal(v, &rec)
	} else if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.log.Warn("reading the CA's back-off from storage; using the last one read", "error", err)
		return g.known[acct]
	}
	g.known[acct] = rec
	return rec
}

// reserve takes a slot of the budget for name now, or returns a
// *WaitError with the slot reserved for it (or the time to come back).
func (g *caGate) reserve(ctx context.Context, acct caAccount, name string, now time.Time) error {
	lock := acct.lockName()
	if err := g.store.Lock(ctx, lock); err != nil {
		return fmt.Errorf("locking the fleet's order budget: %w", err)
	}
	defer func() {
		if err := g.store.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			g.log.Warn("unlocking the fleet's order budget", "error", err)
		}
	}()
	var ol orderLog
	key := acct.key("orders")
	switch v, err := g.store.Load(ctx, key); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading the fleet's order budget: %w", err)
	default:
		if err := json.Unmarshal(v, &ol); err != nil {
			g.log.Warn("the fleet's order budget in storage is unreadable; starting it anew", "key", key, "error", err)
			ol = orderLog{}
		}
	}
	at, ok, stored := ol.take(name, now, g.budget, g.window, g.grace)
	if stored {
		v, err := json.Marshal(ol)
		if err != nil {
			return err
		}
		if err := g.store.Store(ctx, key, v); err != nil {
			return fmt.Errorf("recording in the fleet's order budget: %w", err)
		}
	}
	if ok {
		return nil
	}
	reason := fmt.Sprintf("%d orders per %v; a slot is reserved for %s", g.budget, g.window, name)
	if !stored {
		// Beyond one window ahead nothing is reserved: come back a little
		// before the slot, spread so that the names do not all come at
		// once, and reserve then.
		at = at.Add(-g.window / 2).Add(backoff.Jitter(g.window / 2))
		reason = fmt.Sprintf("%d orders per %v; every slot of the next window is reserved", g.budget, g.window)
	}
	return &WaitError{Until: at, Reason: reason, Err: ErrOrderBudget}
}

// orderLog is the value stored under an account's orders key: the orders
// the fleet placed in the last window and the slots reserved for names
// waiting, sorted by time.
type orderLog struct {
	Orders []slot `json:"orders"`
}

// slot is one order, or, while Name is set, a reservation for that name.
type slot struct {
	At   time.Time `json:"at"`
	Name string    `json:"name,omitempty"`
}

// take decides an order for name at now under a budget of n per window.
// ok: order now (recorded). Otherwise at is when to come back: name's
// reserved slot, or (not reserved) the first free slot. stored reports
// whether l changed.
func (l *orderLog) take(name string, now time.Time, n int, window, grace time.Duration) (at time.Time, ok, stored bool) {
	// Orders older than a window no longer count; nor do reservations
	// nobody claimed in time: no order was placed at their time.
	before := len(l.Orders)
	l.Orders = slices.DeleteFunc(l.Orders, func(s slot) bool {
		return !s.At.After(now.Add(-window)) || s.Name != "" && s.Name != name && now.Sub(s.At) > grace
	})
	stored = len(l.Orders) != before
	if i := slices.IndexFunc(l.Orders, func(s slot) bool { return s.Name == name }); i >= 0 {
		s := l.Orders[i]
		switch {
		case s.At.After(now):
			return s.At, false, stored
		case now.Sub(s.At) <= grace:
			l.Orders[i].Name = ""
			return now, true, true
		}
		// Too late for the slot, which went unused: place name anew.
		l.Orders = slices.Delete(l.Orders, i, i+1)
		stored = true
	}
	at = l.place(now, n, window)
	switch {
	case !at.After(now):
		l.insert(slot{At: now})
		return now, true, true
	case at.Sub(now) <= window:
		l.insert(slot{At: at, Name: name})
		return at, false, true
	}
	return at, false, stored
}

// place returns the earliest time from now at which one more order keeps
// every window of the given length at n orders or fewer.
func (l *orderLog) place(now time.Time, n int, window time.Duration) time.Time {
	if l.fits(now, n, window) {
		return now
	}
	for _, s := range l.Orders {
		if c := s.At.Add(window); c.After(now) && l.fits(c, n, window) {
			return c
		}
	}
	return l.Orders[len(l.Orders)-1].At.Add(window) // unreachable: the last candidate fits
}

// fits reports whether an order at c keeps every n+1 consecutive orders
// at least window apart (no window holds more than n).
func (l *orderLog) fits(c time.Time, n int, window time.Duration) bool {
	p, _ := slices.BinarySearchFunc(l.Orders, c, func(s slot, t time.Time) int {
		if s.At.After(t) {
			return 1
		}
		return -1
	})
	at := func(i int) time.Time { // the list with c inserted at p
		switch {
		case i < p:
			return l.Orders[i].At
		case i == p:
			return c
		}
		return l.Orders[i-1].At
	}
	for k := max(0, p-n); k <= p && k+n <= len(l.Orders); k++ {
		if at(k+n).Sub(at(k)) < window {
			return false
		}
	}
	return true
}

func (l *orderLog) insert(s slot) {
	i, _ := slices.BinarySearchFunc(l.Orders, s.At, func(o slot, t time.Time) int {
		if o.At.After(t) {
			return 1
		}
		return -1
	})
	l.Orders = slices.Insert(l.Orders, i, s)
}

// What a failed attempt says about the CA account.
const (
	caFine      = iota // nothing the fleet must heed
	caLimited          // the CA rate-limits the account: wait
	caServerErr        // a server error: wait after several in a row
)

// serverErrors is how many attempts in a row must meet server errors
// before the fleet backs off the CA.
const serverErrors = 3

// The fleet's back-off when the CA names no time: after a rate limit, and
// after serverErrors server errors in a row.
var (
	rateLimitPolicy   = backoff.Policy{Base: time.Minute, Max: time.Hour}
	serverErrorPolicy = backoff.Policy{Base: 30 * time.Second, Max: 10 * time.Minute}
)

var httpStatus = regexp.MustCompile(`\bHTTP (\d{3})\b`)

// classify says what err, of an attempt for name, means for the account.
// A rate limit the CA attributes to the name (or its domain) rather than
// to the account is the name's alone: its own retries honour it.
func classify(err error, name string) int {
	status := 0
	var p acme.Problem
	if errors.As(err, &p) {
		status = p.Status
		if p.Type == acme.ProblemTypeRateLimited {
			status = 429
		}
	} else if sm := httpStatus.FindStringSubmatch(err.Error()); sm != nil {
		status, _ = strconv.Atoi(sm[1])
	}
	switch {
	case status == 429:
		if namesIdentifier(p, name) {
			return caFine
		}
		return caLimited
	case status == 503 && p.Detail != "" && retryAfterDetail.MatchString(p.Detail):
		return caLimited
	case status >= 500:
		return caServerErr
	}
	return caFine
}

// namesIdentifier reports whether a problem is about name or one of its
// parent domains (Let's Encrypt's limits per identifier and per registered
// domain quote it in the detail).
func namesIdentifier(p acme.Problem, name string) bool {
	for _, sp := range p.Subproblems {
		if sp.Identifier.Value != "" {
			return true
		}
	}
	d := strings.ToLower(p.Detail)
	n := strings.TrimPrefix(name, "*.")
	for strings.Count(n, ".") >= 1 {
		if strings.Contains(d, `"`+n+`"`) || strings.Contains(d, " "+n+" ") || strings.Contains(d, " "+n+",") {
			return true
		}
		_, n, _ = strings.Cut(n, ".")
	}
	return false
}

// noteResult learns from the end of an attempt with the CA of acct: a
// rate limit or repeated server errors hold the whole fleet back.
func (g *caGate) noteResult(ctx context.Context, acct caAccount, name string, err error) {
	now := g.now()
	kind := caFine
	if err != nil {
		kind = classify(err, name)
	}
	g.mu.Lock()
	if kind == caFine {
		if err == nil {
			delete(g.errs, acct)
		}
		g.mu.Unlock()
		return
	}
	g.errs[acct]++
	n := g.errs[acct]
	g.mu.Unlock()
	var until time.Time
	var reason string
	switch {
	case kind == caLimited:
		reason = "the CA rate-limited an order: " + err.Error()
		if d, ok := retryAfter(err, now); ok {
			until = now.Add(min(d, maxRetryAfter))
		} else {
			until = now.Add(rateLimitPolicy.Delay(n))
		}
	case n >= serverErrors:
		reason = fmt.Sprintf("%d attempts in a row met server errors, the last: %v", n, err)
		if d, ok := retryAfter(err, now); ok {
			until = now.Add(min(d, maxRetryAfter))
		} else {
			until = now.Add(serverErrorPolicy.Delay(n - serverErrors + 1))
		}
	default:
		return
	}
	if herr := g.hold(ctx, acct, until, reason); herr != nil {
		g.log.Error("recording the CA's back-off in storage", "until", until, "error", herr)
	}
}

// hold records in storage that the fleet sends the CA of acct no new
// order before until, unless a later time is recorded already.
func (g *caGate) hold(ctx context.Context, acct caAccount, until time.Time, reason string) error {
	lock := acct.lockName()
	if err := g.store.Lock(ctx, lock); err != nil {
		return err
	}
	defer func() {
		if err := g.store.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			g.log.Warn("unlocking the fleet's order budget", "error", err)
		}
	}()
	if cur := g.backoff(ctx, acct); !cur.Until.Before(until) {
		return nil
	}
	rec := backoffRecord{Until: until.UTC(), Reason: reason, Member: g.member, Recorded: g.now().UTC()}
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := g.store.Store(ctx, acct.key("backoff"), v); err != nil {
		return err
	}
	g.mu.Lock()
	g.known[acct] = rec
	g.mu.Unlock()
	g.log.Warn("the fleet sends this CA account no new orders until the time the CA gave", "issuer", acct.issuer, "until", rec.Until, "reason", reason)
	return nil
}

// Renewals that certmagic's maintenance finds due are spread over the first
// half of the renewal window, each name at its own point (from a hash of
// the name, so that every member agrees): certificates obtained together
// (a first issuance, a migration) do not all renew in one check. Windows
// shorter than 2*minSpread are not spread: certmagic retries a renewal
// held back no sooner than a minute later.
const (
	spreadShare = 0.5
	minSpread   = time.Hour
)

// spreadUntil returns when the renewal of a certificate for name, valid
// from notBefore to notAfter and renewed when ratio of its lifetime is
// left, may begin, if that is after now.
func spreadUntil(name string, notBefore, notAfter time.Time, ratio float64, now time.Time) (time.Time, bool) {
	window := time.Duration(float64(notAfter.Sub(notBefore)) * ratio)
	spread := time.Duration(float64(window) * spreadShare)
	if spread < minSpread || notAfter.Sub(now) > window {
		return time.Time{}, false // not spread, or renewed early on purpose (ARI)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	at := notAfter.Add(-window).Add(time.Duration(float64(spread) * (float64(h.Sum64()>>11) / (1 << 53))))
	return at, now.Before(at)
}

// immediateKey marks the context of attempts whose renewals are not
// spread: the Manager's own, which Start and Manage wait for.
type immediateKey struct{}

func withImmediate(ctx context.Context) context.Context {
	return context.WithValue(ctx, immediateKey{}, true)
}

// gateOrder is called right before certmagic orders a certificate for
// name; an error cancels the attempt.
func (m *Manager) gateOrder(ctx context.Context, name string, renewal, forced bool) error {
	if renewal && !forced && ctx.Value(immediateKey{}) == nil {
		if _, cm := m.cached(name); cm.Leaf != nil {
			if at, ok := spreadUntil(name, cm.Leaf.NotBefore, cm.Leaf.NotAfter, m.magic.RenewalWindowRatio, time.Now()); ok {
				return &WaitError{Until: at, Reason: "the renewals of many certificates are spread over their renewal window", Err: errRenewalSpread}
			}
		}
	}
	err := m.gate.check(ctx, m.caAccount(m.issuerKeys()[0]), name, len(m.magic.Issuers) > 1)
	if err != nil {
		m.log.Debug("order held back", "name", name, "error", err)
	}
	return err
}

// noteCAResult passes the end of an attempt to the gate. data are
// certmagic's cert_obtained or cert_failed event data.
func (m *Manager) noteCAResult(ctx context.Context, name string, data map[string]any, err error) {
	issuer, _ := data["issuer"].(string)
	if issuers, _ := data["issuers"].([]string); len(issuers) > 0 {
		issuer = issuers[len(issuers)-1] // err is from the last CA tried
	}
	if issuer != "" {
		m.gate.noteResult(ctx, m.caAccount(issuer), name, err)
	}
}

func (m *Manager) caAccount(issuer string) caAccount {
	return caAccount{issuer: issuer, email: m.s.email}
}

// holdBack records that an attempt for e was held back by we and waits
// until its time. It reports false when the name's context ended.
func (m *Manager) holdBack(e *entry, we *WaitError) bool {
	wait := max(time.Until(we.Until), 0)
	if errors.Is(we, ErrCABackoff) {
		// Every held name comes back after the CA's time, not all at
		// once. (A reserved slot of the budget is exact: no jitter.)
		wait += backoff.Jitter(min(wait/10, time.Minute))
	}
	m.mu.Lock()
	e.lastErr, e.nextRetry = we, we.Until
	m.notifyLocked()
	m.mu.Unlock()
	m.log.Info("order held back; will try then", "name", e.name, "until", we.Until, "reason", we.Err)
	return m.sleepRetry(e, wait)
}
