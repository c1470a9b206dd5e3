package dns01

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/internal/quarantine"
)

// The journal lives in the shared storage under these keys and lock names.
// Every member of a fleet reads and writes them; change them only together
// with every member.
const (
	journalPrefix   = "dns01/journal" // one key per presented TXT record
	ownersPrefix    = "dns01/owners"  // one key per live Solver: its lease
	sweepLockName   = "dns01_sweep"
	recordLockName  = "dns01_record_" // + the record's FQDN
	sweepLockWait   = 500 * time.Millisecond
	closeCleanupMax = 10 * time.Second

	// foreignGrace is how old a key below journalPrefix or ownersPrefix
	// that is neither an entry nor a lease must be before a sweep treats it
	// as unusable: a younger one may be a write in progress, which some
	// storages list (certmagic's FileStorage lists its temporary files,
	// named with digits, until they are renamed into place).
	foreignGrace = time.Minute
)

// Storage is what a Solver needs of the storage a fleet shares: the
// key-value and lock methods of certmagic.Storage (which certfleet's
// storage.Storage is), so any of them will do.
type Storage interface {
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, recursive bool) ([]string, error)
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
}

// journalEntry records one TXT record a Solver presented, so that any member
// of the fleet can delete it if its owner dies before cleaning up.
type journalEntry struct {
	Owner   string    `json:"owner"`         // the Solver's id
	Zone    string    `json:"zone"`          // FQDN with trailing dot
	Name    string    `json:"name"`          // the record's FQDN, after CNAMEs
	Value   string    `json:"value"`         // the TXT value
	For     string    `json:"for,omitempty"` // the _acme-challenge name, when it differs from Name
	Created time.Time `json:"created"`
}

// key returns the storage key of e: the owner's id and a digest of the
// record, so that a member lists the entries of an owner by prefix.
func (e journalEntry) key() string {
	h := sha256.Sum256([]byte(e.Zone + "\n" + e.Name + "\n" + e.Value))
	return journalPrefix + "/" + e.Owner + "_" + hex.EncodeToString(h[:12])
}

// record returns the libdns record of e, named relative to its zone.
func (e journalEntry) record(ttl time.Duration) libdns.Record {
	return libdns.TXT{Name: libdns.RelativeName(e.Name, e.Zone), TTL: ttl, Text: e.Value}
}

// ownerRecord is a Solver's lease: while it is renewed, the Solver's journal
// entries are its own business. Once it lapses (or is deleted by Close),
// any member sweeps them.
type ownerRecord struct {
	ID      string        `json:"id"`
	Host    string        `json:"host"` // for people reading the storage
	PID     int           `json:"pid"`
	Started time.Time     `json:"started"`
	Renewed time.Time     `json:"renewed"`
	Lease   time.Duration `json:"lease_ns"`
}

// expired reports whether the lease has lapsed at now.
func (o ownerRecord) expired(now time.Time) bool {
	return now.After(o.Renewed.Add(o.Lease))
}

func ownerKey(id string) string { return ownersPrefix + "/" + id }

// newID returns a random Solver id.
func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// renewLease stores the Solver's owner record with a fresh renewal time.
func (s *Solver) renewLease(ctx context.Context) error {
	host, _ := os.Hostname()
	rec := ownerRecord{ID: s.id, Host: host, PID: os.Getpid(), Started: s.started, Renewed: time.Now(), Lease: s.cfg.OwnerLease}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.cfg.Storage.Store(ctx, ownerKey(s.id), b); err != nil {
		return fmt.Errorf("dns01: storing the solver's lease at %s: %w", ownerKey(s.id), err)
	}
	return nil
}

// writeEntry journals e before its record is written.
func (s *Solver) writeEntry(ctx context.Context, e journalEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := s.cfg.Storage.Store(ctx, e.key(), b); err != nil {
		return fmt.Errorf("dns01: journaling the TXT record %s before writing it: %w", e.Name, err)
	}
	return nil
}

// listEntries returns the keys of the journal entries whose key starts with
// the prefix below journalPrefix ("" for all).
func (s *Solver) listEntries(ctx context.Context, ownerPrefix string) ([]string, error) {
	keys, err := s.cfg.Storage.List(ctx, journalPrefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns01: listing the DNS-01 journal: %w", err)
	}
	var out []string
	for _, k := range keys {
		if base := path.Base(k); strings.HasPrefix(base, ownerPrefix) {
			out = append(out, journalPrefix+"/"+base)
		}
	}
	return out, nil
}

// errBadEntry marks a journal entry that can never be used: it does not
// parse, lacks a field, or is not stored under its own key. The sweep
// quarantines such entries instead of retrying them forever.
var errBadEntry = errors.New("unusable DNS-01 journal entry")

// loadEntry reads and checks the journal entry at key. Its errors match
// errBadEntry (or quarantine.ErrCorrupt, for a value that does not
// decrypt) when the entry itself is unusable; other errors (an outage) are
// worth retrying.
func (s *Solver) loadEntry(ctx context.Context, key string) (journalEntry, error) {
	var e journalEntry
	b, err := s.cfg.Storage.Load(ctx, key)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w %s: not valid JSON: %v", errBadEntry, key, err)
	}
	if e.Owner == "" || e.Zone == "" || e.Name == "" || e.Value == "" {
		return e, fmt.Errorf("%w %s: owner, zone, name or value is missing", errBadEntry, key)
	}
	zone, name := strings.ToLower(strings.TrimSuffix(e.Zone, ".")), strings.ToLower(strings.TrimSuffix(e.Name, "."))
	if name != zone && !strings.HasSuffix(name, "."+zone) {
		return e, fmt.Errorf("%w %s: the record %s is not in zone %s", errBadEntry, key, e.Name, e.Zone)
	}
	if e.key() != key {
		return e, fmt.Errorf("%w %s: the entry belongs under %s (edited or copied by hand?)", errBadEntry, key, e.key())
	}
	return e, nil
}

// quarantineEntry moves the unusable journal entry at key aside (see
// internal/quarantine) with why, so that no sweep trips over it again and
// an operator can still see which record it named.
func (s *Solver) quarantineEntry(ctx context.Context, key string, why error) {
	dir, _, err := quarantine.Move(ctx, s.cfg.Storage, key, why.Error(), []string{key})
	if err != nil {
		s.log.WarnContext(ctx, "cannot quarantine an unusable DNS-01 journal entry; the next sweep tries again", "key", key, "reason", why, "error", err)
		return
	}
	s.log.WarnContext(ctx, "moved an unusable DNS-01 journal entry aside; its record, if any, must be deleted by hand", "key", key, "reason", why, "quarantine", dir)
}

// removeRecord deletes the record of e from its zone and then e from the
// journal, holding the record's lock.
func (s *Solver) removeRecord(ctx context.Context, e journalEntry) error {
	release, err := s.locks.acquire(ctx, e.Name)
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.dns.DeleteRecords(ctx, e.Zone, []libdns.Record{e.record(0)}); err != nil {
		return fmt.Errorf("dns01: deleting the TXT record %s from zone %s: %w", e.Name, e.Zone, err)
	}
	if err := s.cfg.Storage.Delete(ctx, e.key()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dns01: removing the journal entry of %s (the record is deleted): %w", e.Name, err)
	}
	return nil
}

// sweepResult says what a sweep did and when the next one is due.
type sweepResult struct {
	removed int           // records deleted
	failed  int           // records that could not be deleted
	next    time.Duration // when a live owner's entries may become orphans; 0 if none
}

// sweep deletes the records of journal entries whose owner is gone: its
// lease lapsed or was released. It also retries the cleanups this Solver
// failed. It holds the fleet's sweep lock; when another member holds it,
// that member is sweeping, and sweep returns at once.
func (s *Solver) sweep(ctx context.Context) (sweepResult, error) {
	var res sweepResult
	lockCtx, cancel := context.WithTimeout(ctx, sweepLockWait)
	err := s.cfg.Storage.Lock(lockCtx, sweepLockName)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return res, nil // another member is sweeping
		}
		return res, fmt.Errorf("dns01: taking the journal sweep lock: %w", err)
	}
	defer s.cfg.Storage.Unlock(context.WithoutCancel(ctx), sweepLockName)

	keys, err := s.listEntries(ctx, "")
	if err != nil {
		return res, err
	}
	now := time.Now()
	owners := map[string]*ownerState{}
	var errs []error
	for _, key := range keys {
		id, _, ok := strings.Cut(path.Base(key), "_")
		if !ok || id == "" {
			if s.settled(ctx, key, now) {
				s.quarantineEntry(ctx, key, fmt.Errorf("%w %s: the key names no owner", errBadEntry, key))
			}
			continue
		}
		st := owners[id]
		if st == nil {
			st = s.ownerState(ctx, id, now)
			owners[id] = st
		}
		if !st.gone {
			if st.expires > 0 && (res.next == 0 || st.expires < res.next) {
				res.next = st.expires
			}
			continue
		}
		e, err := s.loadEntry(ctx, key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // cleaned up meanwhile
		case errors.Is(err, errBadEntry) || errors.Is(err, quarantine.ErrCorrupt):
			s.quarantineEntry(ctx, key, err)
			continue
		case err != nil:
			// Unreachable now; the next sweep reads it again.
			res.failed++
			st.failed = true
			errs = append(errs, fmt.Errorf("dns01: reading the journal entry %s: %w", key, err))
			continue
		}
		if id == s.id && s.isActive(e) {
			continue
		}
		if err := s.removeRecord(ctx, e); err != nil {
			res.failed++
			st.failed = true
			errs = append(errs, err)
			continue
		}
		res.removed++
		s.log.InfoContext(ctx, "deleted orphaned DNS-01 challenge record", "name", e.Name, "zone", e.Zone, "owner", e.Owner)
	}
	// Leases of gone owners whose records are all deleted are garbage.
	for id, st := range owners {
		if st.gone && !st.failed && id != s.id {
			_ = s.cfg.Storage.Delete(ctx, ownerKey(id))
		}
	}
	s.collectLeases(ctx, now, owners)
	return res, errors.Join(errs...)
}

// ownerState is what a sweep decided about one owner.
type ownerState struct {
	gone    bool
	expires time.Duration // for live owners: time until the lease lapses
	failed  bool          // some of its records could not be deleted
}

// ownerState decides whether the owner id is gone. This Solver counts as
// gone for its own inactive entries (cleanups that failed). An owner whose
// lease cannot be read for another reason than its absence is presumed
// alive.
func (s *Solver) ownerState(ctx context.Context, id string, now time.Time) *ownerState {
	if id == s.id {
		return &ownerState{gone: true}
	}
	b, err := s.cfg.Storage.Load(ctx, ownerKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return &ownerState{gone: true}
	}
	if err != nil {
		s.log.WarnContext(ctx, "cannot read a DNS-01 owner lease; presuming the owner alive", "owner", id, "error", err)
		return &ownerState{expires: s.cfg.SweepInterval}
	}
	var o ownerRecord
	if err := json.Unmarshal(b, &o); err != nil || o.Lease <= 0 {
		return &ownerState{gone: true}
	}
	if o.expired(now) {
		return &ownerState{gone: true}
	}
	return &ownerState{expires: o.Renewed.Add(o.Lease).Sub(now)}
}

// settled reports whether key was last written foreignGrace or longer
// before now: not a write still in progress. A storage without Stat (every
// certmagic.Storage has it) cannot tell: its keys count as settled.
func (s *Solver) settled(ctx context.Context, key string, now time.Time) bool {
	st, ok := s.cfg.Storage.(interface {
		Stat(context.Context, string) (certmagic.KeyInfo, error)
	})
	if !ok {
		return true
	}
	info, err := st.Stat(ctx, key)
	return err == nil && now.Sub(info.Modified) >= foreignGrace
}

// collectLeases deletes the leases of owners that lapsed long ago and left
// no journal entries (they died with nothing presented).
func (s *Solver) collectLeases(ctx context.Context, now time.Time, seen map[string]*ownerState) {
	keys, err := s.cfg.Storage.List(ctx, ownersPrefix, false)
	if err != nil {
		return
	}
	for _, k := range keys {
		id := path.Base(k)
		if id == s.id || seen[id] != nil {
			continue
		}
		b, err := s.cfg.Storage.Load(ctx, ownerKey(id))
		if err != nil {
			continue
		}
		var o ownerRecord
		if json.Unmarshal(b, &o) == nil && o.Lease > 0 && !o.expired(now.Add(-o.Lease)) {
			continue
		}
		if o.ID != id && !s.settled(ctx, ownerKey(id), now) {
			continue // not a lease, perhaps a write in progress
		}
		_ = s.cfg.Storage.Delete(ctx, ownerKey(id))
	}
}
