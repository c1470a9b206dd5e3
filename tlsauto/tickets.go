package tlsauto

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/backoff"
)

// A TLS session ticket is the server's session state, encrypted with a key
// only the server knows, that the client hands back to resume the session
// without a full handshake. crypto/tls makes random keys for each tls.Config
// value, so behind a load balancer a ticket from one member never resumes
// at another. Under TicketsShared the keys live in the shared storage
// (encrypted when the storage is), one document under ticketKeysKey:
//
//   - every SessionTicketRotation one member, holding the storage lock
//     ticketLockName, makes a new key and stores it first in the list; it
//     re-reads the list under the lock, so two members never make keys for
//     the same period;
//   - every member reads the list when it changes (the change feed, or
//     polling every SyncInterval) and at each rotation time, and installs
//     the keys still within SessionTicketLifetime: the first encrypts new
//     tickets, all of them decrypt;
//   - a member that cannot reach storage keeps the keys it has (dropping
//     those past their lifetime, never the newest) and keeps serving; it
//     tries again with backoff and converges when storage is back.
//
// The keys are installed on one tls.Config value the Manager owns, whose
// EncryptTicket and DecryptTicket become the WrapSession and UnwrapSession
// of every tls.Config that serves the Manager's certificates: those
// functions are copied by tls.Config.Clone, so a clone follows rotations.

// TicketMode says whose keys encrypt TLS session tickets: see
// Config.SessionTickets.
type TicketMode string

// Session ticket modes.
const (
	// TicketsShared keeps session ticket keys in Storage, shared by the
	// fleet and rotated on a schedule (the default).
	TicketsShared TicketMode = "shared"
	// TicketsLocal leaves session tickets to crypto/tls: random keys for
	// each tls.Config value, rotated daily, dropped after 7 days.
	TicketsLocal TicketMode = "local"
	// TicketsOff turns session tickets off: every connection makes a full
	// handshake.
	TicketsOff TicketMode = "off"
)

// Storage names of the shared session ticket keys.
const (
	ticketKeysKey  = "certfleet/session-tickets/keys"
	ticketLockName = "certfleet/session-tickets"
)

// Bounds of the session ticket settings.
const (
	defaultTicketRotation = 12 * time.Hour
	minTicketRotation     = time.Second
	maxTicketLifetime     = 7 * 24 * time.Hour // crypto/tls's own limit on a session's age
	maxTicketKeys         = 16                 // keys tried on each resumption, at most
	ticketTimeout         = time.Minute        // bounds a refresh (reading, locking, writing), at most
)

// ticketSettings are the validated session ticket fields of a Config.
type ticketSettings struct {
	mode     TicketMode
	rotation time.Duration
	lifetime time.Duration
}

// checkTickets validates the session ticket fields and applies defaults.
func (c *Config) checkTickets() (ticketSettings, error) {
	t := ticketSettings{mode: c.SessionTickets}
	switch t.mode {
	case "":
		t.mode = TicketsShared
	case TicketsShared, TicketsLocal, TicketsOff:
	default:
		return t, invalid("SessionTickets", "%q is not a mode: use %q (the default), %q or %q", c.SessionTickets, TicketsShared, TicketsLocal, TicketsOff)
	}
	var err error
	if t.rotation, err = checkDuration("SessionTicketRotation", c.SessionTicketRotation, defaultTicketRotation, minTicketRotation, maxTicketLifetime); err != nil {
		return t, err
	}
	switch l := c.SessionTicketLifetime; {
	case l == 0:
		t.lifetime = min(3*t.rotation, maxTicketLifetime)
	case l < 0:
		return t, invalid("SessionTicketLifetime", "%v is negative: use 0 for the default (3 × SessionTicketRotation)", l)
	case l < t.rotation:
		return t, invalid("SessionTicketLifetime", "%v is shorter than SessionTicketRotation (%v): a key must decrypt tickets at least as long as it encrypts them", l, t.rotation)
	case l > maxTicketKeys*t.rotation:
		return t, invalid("SessionTicketLifetime", "%v is more than %d × SessionTicketRotation (%v): every key is tried on each resumption; make SessionTicketRotation longer", l, maxTicketKeys, t.rotation)
	case l > maxTicketLifetime:
		return t, invalid("SessionTicketLifetime", "%v is longer than the maximum, %v", l, maxTicketLifetime)
	default:
		t.lifetime = l
	}
	return t, nil
}

// InstallSessionTickets makes cfg encrypt and decrypt TLS session tickets
// as the Manager's Config.SessionTickets says. TLSConfig's configuration
// has them already; call it on a tls.Config of your own that serves with
// GetCertificate, and on each tls.Config that its GetConfigForClient
// returns (crypto/tls uses that one's settings). Under TicketsShared it
// sets cfg.WrapSession and cfg.UnwrapSession to the fleet's keys, which
// follow every rotation, in cfg and in its clones; under TicketsOff it sets
// cfg.SessionTicketsDisabled; under TicketsLocal it does nothing.
//
// Until Start has read the fleet's keys from storage (or while storage has
// never been reachable), the Manager's tickets use keys of its own and
// resume at this member only.
func (m *Manager) InstallSessionTickets(cfg *tls.Config) {
	if cfg == nil {
		return
	}
	switch m.s.tickets.mode {
	case TicketsShared:
		cfg.WrapSession, cfg.UnwrapSession = m.tickets.keys.EncryptTicket, m.tickets.keys.DecryptTicket
	case TicketsOff:
		cfg.SessionTicketsDisabled = true
	}
}

// ticketKey is one session ticket key. Its String never shows the key.
type ticketKey struct {
	created time.Time
	key     [32]byte
}

// String describes k without the key.
func (k ticketKey) String() string {
	return "session ticket key made " + k.created.UTC().Format(time.RFC3339Nano)
}

// GoString is String, so that %#v does not show the key either.
func (k ticketKey) GoString() string { return k.String() }

// storedTicketKeys is the document stored under ticketKeysKey.
type storedTicketKeys struct {
	Keys []storedTicketKey `json:"keys"` // newest first
}

type storedTicketKey struct {
	Created time.Time `json:"created"`
	Key     []byte    `json:"key"`
}

// errUnreadableTicketKeys reports a stored document that cannot be used; it
// is replaced at the next rotation. It never carries the document's text.
var errUnreadableTicketKeys = errors.New("the stored session ticket keys are unreadable")

func decodeTicketKeys(b []byte) ([]ticketKey, error) {
	var doc storedTicketKeys
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, errUnreadableTicketKeys
	}
	keys := make([]ticketKey, 0, len(doc.Keys))
	for _, k := range doc.Keys {
		if len(k.Key) != 32 || k.Created.IsZero() {
			return nil, errUnreadableTicketKeys
		}
		keys = append(keys, ticketKey{created: k.Created, key: [32]byte(k.Key)})
	}
	slices.SortStableFunc(keys, func(a, b ticketKey) int { return b.created.Compare(a.created) })
	return keys, nil
}

func encodeTicketKeys(keys []ticketKey) ([]byte, error) {
	doc := storedTicketKeys{Keys: make([]storedTicketKey, len(keys))}
	for i, k := range keys {
		doc.Keys[i] = storedTicketKey{Created: k.created.UTC(), Key: k.key[:]}
	}
	return json.Marshal(doc)
}

// tickets keeps the fleet's session ticket keys installed.
type tickets struct {
	set   ticketSettings
	store certmagic.Storage
	log   *slog.Logger
	keys  *tls.Config   // holds the installed keys; serves EncryptTicket and DecryptTicket
	poke  chan struct{} // the stored keys may have changed

	mu        sync.Mutex
	installed []ticketKey // newest first
}

func newTickets(set ticketSettings, store certmagic.Storage, log *slog.Logger) *tickets {
	return &tickets{set: set, store: store, log: log, keys: &tls.Config{}, poke: make(chan struct{}, 1)}
}

// changed tells the loop that the stored keys may have changed.
func (t *tickets) changed() {
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

// run keeps the keys up to date until ctx ends, starting from the result
// of a first refresh.
func (t *tickets) run(ctx context.Context, next time.Time, err error) {
	retry := backoff.Policy{Base: min(time.Second, t.set.rotation/4), Max: min(time.Minute, t.set.rotation)}
	failures := 0
	for {
		if err != nil {
			failures++
			// Keys past their lifetime are dropped at the next try at the
			// latest.
			d := retry.Delay(failures)
			next = time.Now().Add(d)
			t.log.Warn("session ticket keys: storage not reachable; serving with the keys installed", "error", err, "retry_in", d.Round(time.Millisecond))
		} else {
			failures = 0
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-t.poke:
			timer.Stop()
		}
		next, err = t.refresh(ctx)
		if ctx.Err() != nil {
			return
		}
	}
}

// refresh reads the stored keys, makes the next one if its time has come,
// installs the keys accepted now and returns when to look again. When
// storage fails, the installed keys stay (less those past their lifetime).
func (t *tickets) refresh(ctx context.Context) (time.Time, error) {
	// A refresh that outlasts a rotation period is pointless: bound it.
	ctx, cancel := context.WithTimeout(ctx, min(ticketTimeout, max(t.set.rotation, 5*time.Second)))
	defer cancel()
	keys, err := t.load(ctx)
	if errors.Is(err, errUnreadableTicketKeys) {
		t.log.Warn("session ticket keys: replacing the unreadable stored keys")
		keys, err = nil, nil
	}
	if err == nil && t.due(keys, time.Now()) {
		keys, err = t.rotate(ctx)
	}
	if err != nil {
		keys = t.current()
	}
	now := time.Now()
	t.install(keys, now)
	return t.nextCheck(now), err
}

// load reads the stored keys; none is no error.
func (t *tickets) load(ctx context.Context) ([]ticketKey, error) {
	b, err := t.store.Load(ctx, ticketKeysKey)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ticketKeysKey, err)
	}
	return decodeTicketKeys(b)
}

// due reports whether a new key should be made.
func (t *tickets) due(keys []ticketKey, now time.Time) bool {
	return len(keys) == 0 || now.Sub(keys[0].created) >= t.set.rotation
}

// rotate makes and stores a new key under the storage lock, unless another
// member made one for this period first, and returns the stored keys.
func (t *tickets) rotate(ctx context.Context) ([]ticketKey, error) {
	if err := t.store.Lock(ctx, ticketLockName); err != nil {
		return nil, fmt.Errorf("locking %s: %w", ticketLockName, err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := t.store.Unlock(uctx, ticketLockName); err != nil {
			t.log.Warn("session ticket keys: unlocking", "lock", ticketLockName, "error", err)
		}
	}()
	keys, err := t.load(ctx)
	if err != nil && !errors.Is(err, errUnreadableTicketKeys) {
		return nil, err
	}
	now := time.Now()
	if !t.due(keys, now) {
		return keys, nil // another member made this period's key
	}
	k := ticketKey{created: now}
	if _, err := rand.Read(k.key[:]); err != nil {
		return nil, fmt.Errorf("making a session ticket key: %w", err)
	}
	next := append([]ticketKey{k}, t.accepted(keys, now)...)
	b, err := encodeTicketKeys(next)
	if err != nil {
		return nil, err
	}
	if err := t.store.Store(ctx, ticketKeysKey, b); err != nil {
		return nil, fmt.Errorf("storing %s: %w", ticketKeysKey, err)
	}
	t.log.Info("session ticket keys: made the fleet's next key", "keys", len(next))
	return next, nil
}

// accepted returns the keys that still decrypt tickets at now.
func (t *tickets) accepted(keys []ticketKey, now time.Time) []ticketKey {
	var out []ticketKey
	for _, k := range keys {
		if now.Sub(k.created) < t.set.lifetime {
			out = append(out, k)
		}
	}
	return out
}

// current returns the installed keys.
func (t *tickets) current() []ticketKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.installed)
}

// install makes keys[0] encrypt new tickets and every key of keys still
// within its lifetime decrypt them.
func (t *tickets) install(keys []ticketKey, now time.Time) {
	if len(keys) == 0 {
		return
	}
	use := append([]ticketKey{keys[0]}, t.accepted(keys[1:], now)...)
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Equal(use, t.installed) {
		return
	}
	raw := make([][32]byte, len(use))
	for i, k := range use {
		raw[i] = k.key
	}
	t.keys.SetSessionTicketKeys(raw)
	if len(t.installed) == 0 || t.installed[0] != use[0] {
		t.log.Info("session ticket keys: encrypting with the fleet's key", "made", use[0].created, "keys", len(use))
	} else {
		t.log.Debug("session ticket keys: dropped keys past their lifetime", "keys", len(use))
	}
	t.installed = use
}

// nextCheck returns when the keys installed should next be looked at: the
// next rotation (spread a little so that the fleet does not contend for
// the lock all at once) or the end of a key's lifetime.
func (t *tickets) nextCheck(now time.Time) time.Time {
	keys := t.current()
	if len(keys) == 0 {
		return now.Add(t.set.rotation)
	}
	next := keys[0].created.Add(t.set.rotation + backoff.Jitter(min(t.set.rotation/20, 10*time.Second)))
	for _, k := range keys[1:] {
		next = minTime(next, k.created.Add(t.set.lifetime))
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ticketsChanged tells the session ticket loop, if there is one, that the
// stored keys may have changed.
func (m *Manager) ticketsChanged() {
	if m.tickets != nil {
		m.tickets.changed()
	}
}
