package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/storage"
	"github.com/jackc/pgx/v5"
)

// lease is one acquisition of a lock by this client.
type lease struct {
	name  string
	owner string // random token of this acquisition, the row's owner

	cancel context.CancelFunc // stops the keepalive
	done   chan struct{}      // closed when the keepalive has stopped

	mu         sync.Mutex
	lost       bool
	validUntil time.Time // local estimate of the lease end, from the start of the last renewal
}

func (l *lease) markLost() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
}

func (l *lease) isLost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// renewed records a renewal sent at start for d.
func (l *lease) renewed(start time.Time, d time.Duration) {
	l.mu.Lock()
	if end := start.Add(d); end.After(l.validUntil) {
		l.validUntil = end
	}
	l.mu.Unlock()
}

// surelyValid reports whether this client still believes the lease holds.
func (l *lease) surelyValid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.lost && time.Now().Before(l.validUntil)
}

func (l *lease) stopKeepalive() {
	l.cancel()
	<-l.done
}

// newOwner returns a token naming one acquisition: unique, so that an owner
// check can never confuse two holders, even in one process.
func newOwner() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// maxNameBytes bounds key and lock names: a primary-key entry must fit in an
// index page, and a name must fit in a NOTIFY payload.
const maxNameBytes = 2048

// Polling bounds for a blocked Lock. A release wakes waiters at once through
// the change feed; polling finds locks that expired because their holder died.
const minPoll = 20 * time.Millisecond

func (s *Storage) maxPoll() time.Duration {
	return min(max(s.lockTTL/8, minPoll), time.Second)
}

// Lock acquires the lock name, blocking until it is free or expired, or
// until ctx ends. It never returns nil after ctx has ended: an acquisition
// that races with the end of ctx is released again. While the lock is held
// a keepalive renews it every LockTTL/3, until Unlock or Close.
func (s *Storage) Lock(ctx context.Context, name string) error {
	if err := checkLockName(name); err != nil {
		return err
	}
	owner := newOwner()
	poll := backoff.Policy{Base: minPoll, Max: s.maxPoll()}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("postgres storage: lock %q: %w", name, err)
		}
		// Subscribe before trying, so that a release between the attempt
		// and the wait is not missed.
		wake, unsubscribe := s.feed.awaitRelease(name)
		ok, err := s.tryAcquire(ctx, name, owner)
		if err != nil || ok {
			unsubscribe()
			return err
		}
		timer := time.NewTimer(poll.Delay(attempt))
		select {
		case <-ctx.Done():
		case <-s.life.Done():
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
		unsubscribe()
		if s.life.Err() != nil {
			return fmt.Errorf("postgres storage: lock %q: %w", name, errClosed)
		}
	}
}

// TryLock acquires the lock name if it is free or expired, without waiting.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := checkLockName(name); err != nil {
		return false, err
	}
	return s.tryAcquire(ctx, name, newOwner())
}

// tryAcquire makes one attempt (with retries of transient errors) to take
// the lock for owner.
func (s *Storage) tryAcquire(ctx context.Context, name, owner string) (bool, error) {
	if s.isClosed() {
		return false, fmt.Errorf("postgres storage: lock %q: %w", name, errClosed)
	}
	start := time.Now()
	_, err := s.takeRow(ctx, name, owner, &start)
	return s.settle(ctx, name, owner, start, err)
}

// takeRow runs the statement that takes the lock row for owner, with
// retries of transient errors; pgx.ErrNoRows means the lock is held.
// start is set to when the attempt that succeeded began.
func (s *Storage) takeRow(ctx context.Context, name, owner string, start *time.Time) (int64, error) {
	var fence int64
	_, err := s.retry(ctx, func(ctx context.Context) error {
		*start = time.Now()
		// One round trip: create the row if needed, then take it if free.
		var b pgx.Batch
		b.Queue(s.sql.ensureLock, name)
		b.Queue(s.sql.acquire, name, owner, s.lockTTL.Microseconds())
		br := s.pool.SendBatch(ctx, &b)
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&fence)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	return fence, err
}

// settle turns the outcome of takeRow into the lease, or releases what the
// acquisition may hold: an acquisition whose context ended just as it
// succeeded, or whose reply was lost, must not leave the lock held by
// nobody until it expires.
func (s *Storage) settle(ctx context.Context, name, owner string, start time.Time, err error) (bool, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		// The statement may have committed before the error (a lost reply or
		// a cancel racing the commit): release whatever this owner may hold.
		s.releaseLater(name, owner)
		return false, fmt.Errorf("postgres storage: lock %q: %w", name, err)
	}

	kctx, cancel := context.WithCancel(s.life)
	l := &lease{name: name, owner: owner, cancel: cancel, done: make(chan struct{})}
	l.renewed(start, s.lockTTL)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		s.releaseLater(name, owner)
		return false, fmt.Errorf("postgres storage: lock %q: %w", name, errClosed)
	}
	// The database gave the lock to this acquisition, so any earlier lease of
	// this client on the same name has been lost.
	for _, old := range s.held[name] {
		old.markLost()
		old.cancel()
	}
	s.held[name] = append(s.held[name], l)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.keepalive(kctx, l)
	return true, nil
}

// keepalive renews l every LockTTL/3 until ctx ends or the lease turns out
// to be lost.
func (s *Storage) keepalive(ctx context.Context, l *lease) {
	defer s.wg.Done()
	defer close(l.done)
	interval := s.lockTTL / 3
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, interval)
		var fence int64
		err := s.pool.QueryRow(actx, s.sql.extend, l.name, l.owner, s.lockTTL.Microseconds()).Scan(&fence)
		cancel()
		switch {
		case err == nil:
			l.renewed(start, s.lockTTL)
			timer.Reset(interval)
		case errors.Is(err, pgx.ErrNoRows):
			l.markLost()
			s.log.Warn("lock lost: it expired and was taken over or removed", "lock", l.name)
			return
		case ctx.Err() != nil:
			return
		default:
			// The lease holds until its expiry; try again sooner.
			s.log.Warn("renewing lock failed; retrying", "lock", l.name, "error", err)
			timer.Reset(interval / 4)
		}
	}
}

// Unlock releases the lock name held by this client. It returns an error
// wrapping storage.ErrLockLost if the lock expired and was taken over (or
// removed) meanwhile; it never frees a lock held by someone else. The
// keepalive stops whatever the outcome.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	ls := s.held[name]
	if len(ls) == 0 {
		s.mu.Unlock()
		return fmt.Errorf("postgres storage: unlock %q: this client does not hold the lock: %w", name, storage.ErrLockLost)
	}
	// Of several leases on one name, all but the newest are lost; releasing
	// a lost one first never frees a lock that some caller still uses.
	i := 0
	for j, l := range ls {
		if l.isLost() {
			i = j
			break
		}
	}
	l := ls[i]
	ls = append(ls[:i:i], ls[i+1:]...)
	if len(ls) == 0 {
		delete(s.held, name)
	} else {
		s.held[name] = ls
	}
	s.mu.Unlock()

	l.stopKeepalive()
	if l.isLost() {
		return fmt.Errorf("postgres storage: unlock %q: the lock expired and was taken over: %w", name, storage.ErrLockLost)
	}
	released, ambiguous, err := s.release(ctx, name, l.owner)
	switch {
	case err != nil:
		return fmt.Errorf("postgres storage: unlock %q: %w (the lock expires by itself after %v)", name, err, s.lockTTL)
	case released:
		return nil
	case ambiguous && l.surelyValid():
		// An earlier attempt deleted the row but its reply was lost: the lease
		// had not expired, so nobody else can have taken it.
		return nil
	}
	return fmt.Errorf("postgres storage: unlock %q: the lock expired and was taken over or removed: %w", name, storage.ErrLockLost)
}

// release deletes the lock row if owner still holds it and wakes waiters.
// ambiguous reports that an attempt failed after the statement may have run.
func (s *Storage) release(ctx context.Context, name, owner string) (released, ambiguous bool, err error) {
	ambiguous, err = s.retry(ctx, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, s.sql.release, name, owner, s.lockChannel)
		released = err == nil && tag.RowsAffected() > 0
		return err
	})
	return released, ambiguous, err
}

// releaseLater releases, in the background, a lock that owner may hold
// without knowing it. If the client is closing, the lock simply expires.
func (s *Storage) releaseLater(name, owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.life, s.lockTTL)
		defer cancel()
		if _, _, err := s.release(ctx, name, owner); err != nil && s.life.Err() == nil {
			s.log.Warn("releasing an abandoned lock acquisition failed; it will expire", "lock", name, "error", err)
		}
	}()
}

// RenewLockLease extends the lease of the lock lockKey held by this client
// to at least leaseDuration from now, on the database clock. It never
// shortens a lease; the keepalive continues. It returns an error wrapping
// storage.ErrLockLost if this client no longer holds the lock.
func (s *Storage) RenewLockLease(ctx context.Context, lockKey string, leaseDuration time.Duration) error {
	if leaseDuration <= 0 {
		return fmt.Errorf("postgres storage: renew lock %q: lease duration %v is not positive", lockKey, leaseDuration)
	}
	l := s.liveLease(lockKey)
	if l == nil {
		return fmt.Errorf("postgres storage: renew lock %q: this client does not hold the lock: %w", lockKey, storage.ErrLockLost)
	}
	var fence int64
	start := time.Now()
	_, err := s.retry(ctx, func(ctx context.Context) error {
		start = time.Now()
		return s.pool.QueryRow(ctx, s.sql.extend, lockKey, l.owner, leaseDuration.Microseconds()).Scan(&fence)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		l.markLost()
		return fmt.Errorf("postgres storage: renew lock %q: the lock expired and was taken over: %w", lockKey, storage.ErrLockLost)
	case err != nil:
		return fmt.Errorf("postgres storage: renew lock %q: %w", lockKey, err)
	}
	l.renewed(start, leaseDuration)
	return nil
}

// FencingToken returns the fencing token of the lock name held by this
// client, as the database has it now, or an error wrapping
// storage.ErrLockLost if this client does not hold the lock. Tokens come from
// a sequence: a later holder always has a larger one.
func (s *Storage) FencingToken(ctx context.Context, name string) (uint64, error) {
	l := s.liveLease(name)
	if l == nil {
		return 0, fmt.Errorf("postgres storage: fencing token of lock %q: this client does not hold the lock: %w", name, storage.ErrLockLost)
	}
	var fence int64
	_, err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.sql.fencing, name, l.owner).Scan(&fence)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		l.markLost()
		return 0, fmt.Errorf("postgres storage: fencing token of lock %q: the lock expired and was taken over: %w", name, storage.ErrLockLost)
	case err != nil:
		return 0, fmt.Errorf("postgres storage: fencing token of lock %q: %w", name, err)
	}
	return uint64(fence), nil
}

// liveLease returns this client's lease on name that is not known to be
// lost, or nil.
func (s *Storage) liveLease(name string) *lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.held[name] {
		if !l.isLost() {
			return l
		}
	}
	return nil
}

func (s *Storage) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
