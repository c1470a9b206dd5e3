package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/internal/kvbackend"
	"github.com/certfleet/certfleet/storage"
)

// lockPoll paces a waiter's checks of a held lock.
var lockPoll = backoff.Policy{Base: 10 * time.Millisecond, Max: 250 * time.Millisecond}

// A lock is the KV key lockSubject(name) holding a lease: "<token> <ttl in
// ms>", the holder's random token and its LockTTL. NATS 2.9 has no per-key
// TTL, so the lease is kept by its holder, which rewrites the entry every
// third of the TTL (a compare-and-set on the revision, which changes with
// each write), and judged by waiters: an entry whose revision a waiter has
// seen unchanged for a whole TTL on its own clock belongs to a holder that
// died or stalled, and the waiter takes it over with a compare-and-set on
// that revision. No clocks are compared between machines.

// lockData is what this Storage keeps about a lock it holds.
type lockData struct {
	subj  string
	value []byte // the lease entry
	fence uint64 // revision at which the lock was taken

	mu      sync.Mutex
	rev     uint64    // current revision of the entry
	written time.Time // when this client sent its last write of it (before it was applied)
}

// heldLock is a lock this Storage holds, with the keepalive that renews it
// (kvbackend.Locks).
type heldLock = kvbackend.Held[*lockData]

// leaseTTL reads the holder's TTL from a lease entry; ok is false for a
// malformed one.
func leaseTTL(v []byte) (ttl time.Duration, ok bool) {
	_, ms, found := strings.Cut(string(v), " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !found || err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// Lock acquires the lock called name, waiting while another client holds it,
// until ctx ends. A held lock is kept alive until Unlock; if its holder
// crashes or stalls, another client takes it over once it has gone LockTTL
// without renewal. Lock never returns holding the lock after ctx has ended.
func (s *Storage) Lock(ctx context.Context, name string) error {
	return s.lock(ctx, name, true)
}

// TryLock acquires the lock called name if it is free, without waiting.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	err := s.lock(ctx, name, false)
	if errors.Is(err, errBusy) {
		return false, nil
	}
	return err == nil, err
}

var errBusy = errors.New("lock is held")

func (s *Storage) lock(ctx context.Context, name string, wait bool) (err error) {
	if s.g.Closed() {
		return fmt.Errorf("nats: lock %q: %w", name, errClosed)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("nats: lock token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	l := &lockData{
		subj:  lockSubject(name),
		value: []byte(token + " " + strconv.FormatInt(s.lockTTL.Milliseconds(), 10)),
	}
	var seenRev uint64   // revision of the other holder's entry
	var seenAt time.Time // when this call first saw it
	var sent time.Time   // when this call last sent a write of the lock
	for attempt := 1; ; attempt++ {
		e, err := s.get(ctx, l.subj)
		if err != nil {
			return fmt.Errorf("nats: lock %q: %w", name, err)
		}
		var rev uint64
		switch {
		case e == nil:
			sent = time.Now()
			err = s.req.Do(ctx, func(ctx context.Context) error {
				var err error
				rev, err = s.kv.Create(ctx, l.subj, l.value)
				return err
			})
		case string(e.Value()) == string(l.value):
			rev = e.Revision() // a write of ours went through; its reply was lost
		default:
			ttl, ok := leaseTTL(e.Value())
			if !ok {
				ttl = s.lockTTL
			}
			if e.Revision() != seenRev {
				seenRev, seenAt = e.Revision(), time.Now()
			}
			if time.Since(seenAt) < ttl {
				if !wait {
					return errBusy
				}
				pause := min(lockPoll.Delay(attempt), time.Until(seenAt.Add(ttl))+time.Millisecond)
				if err := backoff.Sleep(ctx, pause); err != nil {
					return fmt.Errorf("nats: lock %q: %w", name, err)
				}
				continue
			}
			// Not renewed for a whole TTL: take it over.
			s.log.Info("taking over a lock its holder stopped renewing", "lock", name, "ttl", ttl)
			sent = time.Now()
			err = s.req.Do(ctx, func(ctx context.Context) error {
				var err error
				rev, err = s.kv.Update(ctx, l.subj, l.value, seenRev)
				return err
			})
		}
		switch {
		case isConflict(err):
			continue // someone else moved first: look again
		case err != nil || ctx.Err() != nil:
			// The write may have gone through although its reply was lost, or
			// the caller gave up: delete whatever this token holds.
			s.releaseStray(name, l)
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("nats: lock %q: %w", name, err)
		}
		l.fence, l.rev, l.written = rev, rev, sent
		if s.locks.Hold(name, l) == nil {
			s.releaseStray(name, l)
			return fmt.Errorf("nats: lock %q: %w", name, errClosed)
		}
		return nil
	}
}

// renew rewrites l's entry if it is still l's, and reports whether it was.
func (s *Storage) renew(ctx context.Context, h *heldLock) (bool, error) {
	l := h.Data
	l.mu.Lock()
	defer l.mu.Unlock()
	var rev uint64
	sent := time.Now()
	err := s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		rev, err = s.kv.Update(ctx, l.subj, l.value, l.rev)
		return err
	})
	if isConflict(err) {
		// Ours still, if an earlier attempt went through unacknowledged.
		e, gerr := s.get(ctx, l.subj)
		if gerr != nil {
			return false, gerr
		}
		if e == nil || string(e.Value()) != string(l.value) {
			return false, nil
		}
		rev, err = e.Revision(), nil
	}
	if err != nil {
		return false, err
	}
	l.rev, l.written = rev, sent
	return true, nil
}

// held returns the lock name this Storage holds, or an error wrapping
// storage.ErrLockLost.
func (s *Storage) held(op, name string) (*heldLock, error) {
	if l := s.locks.Get(name); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("nats: %s %q: this client holds no such lock: %w", op, name, storage.ErrLockLost)
}

// Unlock releases the lock called name: it deletes the entry only at the
// revision this client last wrote. If another client took the lock over
// meanwhile, Unlock leaves it alone and returns an error wrapping
// storage.ErrLockLost: the work done under the lock may have raced with
// that client's.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	h := s.locks.Release(name)
	if h == nil {
		return fmt.Errorf("nats: unlock %q: this client holds no such lock: %w", name, storage.ErrLockLost)
	}
	l := h.Data
	l.mu.Lock()
	rev, written := l.rev, l.written
	l.mu.Unlock()
	var err error
	for range 3 {
		err = s.req.Do(ctx, func(ctx context.Context) error {
			return s.kv.Delete(ctx, l.subj, jetstream.LastRevision(rev))
		})
		if !isConflict(err) {
			break
		}
		// A renewal whose reply was lost (its caller gave up) may have
		// moved the revision on: the entry is still ours if it holds our
		// token. An entry already gone was deleted by an unacknowledged
		// attempt of this release if no one could have taken the lock
		// over yet: that takes a whole TTL without a renewal.
		e, gerr := s.get(ctx, l.subj)
		if gerr == nil && e == nil && time.Since(written) < s.lockTTL {
			err = nil
			break
		}
		if gerr != nil || e == nil || string(e.Value()) != string(l.value) {
			break
		}
		rev = e.Revision()
	}
	switch {
	case isConflict(err):
		return fmt.Errorf("nats: unlock %q: another client took the lock over: %w", name, storage.ErrLockLost)
	case err != nil:
		return fmt.Errorf("nats: unlock %q (others take it over after %s): %w", name, s.lockTTL, err)
	case h.Lost():
		return fmt.Errorf("nats: unlock %q: %w", name, storage.ErrLockLost)
	}
	return nil
}

// RenewLockLease renews the lock called name at once, checking that this
// client still holds it. The keepalive goes on renewing it as long as this
// Storage is open, so the lock lasts as long as its holder needs it. It
// fails with an error wrapping storage.ErrLockLost when another client took
// the lock over.
func (s *Storage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	l, err := s.held("renew lease of", name)
	if err != nil {
		return err
	}
	if l.Lost() {
		return fmt.Errorf("nats: renew lease of %q: %w", name, storage.ErrLockLost)
	}
	ok, err := s.renew(ctx, l)
	switch {
	case err != nil:
		return fmt.Errorf("nats: renew lease of %q: %w", name, err)
	case !ok:
		l.MarkLost()
		return fmt.Errorf("nats: renew lease of %q: another client took the lock over: %w", name, storage.ErrLockLost)
	}
	return nil
}

// FencingToken returns the fencing token of the lock called name, which this
// client must hold: the bucket revision at which it took the lock.
// Revisions grow with every write to the bucket, so a later holder's token
// is always larger. It checks with the server that the lock is still held.
func (s *Storage) FencingToken(ctx context.Context, name string) (uint64, error) {
	l, err := s.held("fencing token of", name)
	if err != nil {
		return 0, err
	}
	e, err := s.get(ctx, l.Data.subj)
	switch {
	case err != nil:
		return 0, fmt.Errorf("nats: fencing token of %q: %w", name, err)
	case e == nil || string(e.Value()) != string(l.Data.value) || l.Lost():
		return 0, fmt.Errorf("nats: fencing token of %q: another client took the lock over: %w", name, storage.ErrLockLost)
	}
	return l.Data.fence, nil
}

// releaseStray deletes, in the background, l's entry if it is there. Used
// when Lock gives up at a moment when its write may have gone through.
func (s *Storage) releaseStray(name string, l *lockData) {
	s.g.Go(func(gctx context.Context) {
		ctx, cancel := context.WithTimeout(gctx, s.timeout)
		defer cancel()
		e, err := s.get(ctx, l.subj)
		if err == nil && e != nil && string(e.Value()) == string(l.value) {
			err = s.kv.Delete(ctx, l.subj, jetstream.LastRevision(e.Revision()))
		}
		if err != nil && !isConflict(err) {
			s.log.Warn("could not release a lock taken as Lock gave up; others take it over after LockTTL", "lock", name, "error", err)
		}
	})
}
