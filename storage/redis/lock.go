package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/certfleet/certfleet/storage"
)

// Lock polling: a waiter retries after lockPollMin, doubling up to
// lockPollMax, and sooner when the holder's lease ends first.
const (
	lockPollMin = 10 * time.Millisecond
	lockPollMax = 250 * time.Millisecond
	// releaseMarkerTTL outlives any retry of a release.
	releaseMarkerTTL = time.Minute
	// fenceTTL is how long the fencing counter outlives the last acquisition
	// (see acquireScript: numbers grow also across its loss).
	fenceTTL = 7 * 24 * time.Hour
)

// heldLock is a lock this Storage holds, with the keepalive that refreshes it.
type heldLock struct {
	name  string
	key   string // Redis key of the lock
	value string // "<token>:<fence>", what the lock key holds while we own it
	fence uint64
	lost  atomic.Bool   // set when a refresh found the lock gone or taken
	stop  func()        // stops the keepalive
	done  chan struct{} // closed when the keepalive has returned
}

func (s *Storage) lockKey(name string) string { return s.p + ":l:" + name }
func (s *Storage) fenceKey() string           { return s.p + ":fence" }
func (s *Storage) releaseKey(token string) string {
	return s.p + ":r:" + token
}

// Lock acquires the lock called name, waiting while another client holds it,
// until ctx ends. A held lock is kept alive until Unlock; if its holder
// crashes or stalls, it expires after LockTTL. Lock never returns holding the
// lock after ctx has ended.
func (s *Storage) Lock(ctx context.Context, name string) error {
	token, err := newToken()
	if err != nil {
		return err
	}
	delay := lockPollMin
	for {
		ok, wait, err := s.acquire(ctx, name, token)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(min(jitter(delay), wait+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redis: lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, lockPollMax)
	}
}

// TryLock acquires the lock called name if it is free, without waiting.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	token, err := newToken()
	if err != nil {
		return false, err
	}
	ok, _, err := s.acquire(ctx, name, token)
	return ok, err
}

// acquire makes one attempt (with transient retries) to take name for token.
// When another client holds the lock it returns false and how long that
// client's lease still runs.
func (s *Storage) acquire(ctx context.Context, name, token string) (ok bool, wait time.Duration, err error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return false, 0, fmt.Errorf("redis: lock %q: %w", name, goredis.ErrClosed)
	}
	key := s.lockKey(name)
	var reply any
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		reply, err = s.eval(ctx, acquireScript, []string{key, s.fenceKey()},
			token, s.lockTTL.Milliseconds(), fenceTTL.Milliseconds()).Result()
		return err
	})
	if err != nil || ctx.Err() != nil {
		// The script may have run although its reply was lost, or Lock's
		// caller gave up after it ran: release whatever this token might
		// hold, so that no lock outlives the call.
		s.releaseStray(key, token)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return false, 0, fmt.Errorf("redis: lock %q: %w", name, err)
	}
	switch r := reply.(type) {
	case int64: // another holder; its remaining lease in ms
		return false, time.Duration(max(r, 0)) * time.Millisecond, nil
	case string:
		fence, err := parseLockValue(r, token)
		if err != nil {
			return false, 0, fmt.Errorf("redis: lock %q: %w", name, err)
		}
		if !s.hold(&heldLock{name: name, key: key, value: r, fence: fence}) {
			s.releaseStray(key, token)
			return false, 0, fmt.Errorf("redis: lock %q: %w", name, goredis.ErrClosed)
		}
		return true, 0, nil
	default:
		return false, 0, fmt.Errorf("redis: lock %q: unexpected reply %T from acquire script", name, reply)
	}
}

// parseLockValue returns the fencing number of a lock value held by token.
func parseLockValue(v, token string) (uint64, error) {
	f, ok := strings.CutPrefix(v, token+":")
	if !ok {
		return 0, fmt.Errorf("lock value %q does not belong to this client", v)
	}
	n, err := strconv.ParseUint(f, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lock value %q has no fencing number", v)
	}
	return n, nil
}

// hold records l as held and starts its keepalive; false when s is closed.
func (s *Storage) hold(l *heldLock) bool {
	ctx, stop := context.WithCancel(s.ctx)
	l.stop, l.done = stop, make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		stop()
		return false
	}
	if old := s.locks[l.name]; old != nil {
		// Cannot happen while Redis holds at most one owner per name, unless
		// the old lock was lost without Unlock; its keepalive has nothing
		// left to do.
		old.stop()
	}
	s.locks[l.name] = l
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(l.done)
		s.keepalive(ctx, l)
	}()
	return true
}

// keepalive refreshes l every third of LockTTL until ctx ends or the lock
// turns out to be gone. Failed refreshes are retried at the next tick: the
// lock survives an outage shorter than about two thirds of LockTTL.
func (s *Storage) keepalive(ctx context.Context, l *heldLock) {
	every := s.lockTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		held, err := s.refresh(rctx, l, s.lockTTL)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("lock keepalive failed; retrying", "lock", l.name, "error", err)
		case err == nil && !held:
			l.lost.Store(true)
			s.log.Error("lock lost: it expired or another client took it", "lock", l.name)
			return
		}
	}
}

// refresh extends l to at least d from now and reports whether l still holds
// the lock.
func (s *Storage) refresh(ctx context.Context, l *heldLock, d time.Duration) (bool, error) {
	var n int64
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.eval(ctx, refreshScript, []string{l.key}, l.value, d.Milliseconds()).Int64()
		return err
	})
	return n == 1, err
}

// held returns the lock name this Storage holds, or an error wrapping
// storage.ErrLockLost.
func (s *Storage) held(op, name string) (*heldLock, error) {
	s.mu.Lock()
	l := s.locks[name]
	s.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("redis: %s %q: this client holds no such lock: %w", op, name, storage.ErrLockLost)
	}
	return l, nil
}

// Unlock releases the lock called name. If the lock expired or another client
// took it meanwhile, Unlock leaves the other client's lock alone and returns
// an error wrapping storage.ErrLockLost: the work done under the lock may have
// raced with that client's.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	l, err := s.held("unlock", name)
	if err != nil {
		return err
	}
	l.stop()
	<-l.done
	s.mu.Lock()
	if s.locks[name] == l {
		delete(s.locks, name)
	}
	s.mu.Unlock()

	var released int64
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		released, err = s.eval(ctx, releaseScript, []string{l.key, s.releaseKey(tokenOf(l.value))},
			l.value, releaseMarkerTTL.Milliseconds()).Int64()
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("redis: unlock %q (it expires by itself after %s): %w", name, s.lockTTL, err)
	case released == 0 || l.lost.Load():
		return fmt.Errorf("redis: unlock %q: the lock expired or another client took it: %w", name, storage.ErrLockLost)
	}
	return nil
}

// RenewLockLease extends the lock called name so that it lasts at least
// leaseDuration from now. It never shortens a lease; the keepalive goes on
// refreshing the lock in any case. It fails with an error wrapping
// storage.ErrLockLost when this client no longer holds the lock.
func (s *Storage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	l, err := s.held("renew lease of", name)
	if err != nil {
		return err
	}
	if l.lost.Load() {
		return fmt.Errorf("redis: renew lease of %q: %w", name, storage.ErrLockLost)
	}
	ok, err := s.refresh(ctx, l, max(leaseDuration, time.Millisecond))
	switch {
	case err != nil:
		return fmt.Errorf("redis: renew lease of %q: %w", name, err)
	case !ok:
		l.lost.Store(true)
		return fmt.Errorf("redis: renew lease of %q: the lock expired or another client took it: %w", name, storage.ErrLockLost)
	}
	return nil
}

// FencingToken returns the fencing number of the lock called name, which this
// client must hold: a number that grows each time any lock of this storage
// changes hands. It checks with Redis that the lock is still held.
func (s *Storage) FencingToken(ctx context.Context, name string) (uint64, error) {
	l, err := s.held("fencing token of", name)
	if err != nil {
		return 0, err
	}
	var cur string
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		cur, err = s.client.Get(ctx, l.key).Result()
		return err
	})
	switch {
	case err != nil && !errors.Is(err, goredis.Nil):
		return 0, fmt.Errorf("redis: fencing token of %q: %w", name, err)
	case cur != l.value || l.lost.Load():
		return 0, fmt.Errorf("redis: fencing token of %q: the lock expired or another client took it: %w", name, storage.ErrLockLost)
	}
	return l.fence, nil
}

// releaseStray frees, in the background, the lock key if token holds it.
// Used when Lock gives up at a moment when its acquire may have succeeded.
func (s *Storage) releaseStray(key, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return // the lock expires after LockTTL
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		defer cancel()
		err := retry(ctx, func(ctx context.Context) error {
			return s.eval(ctx, releaseStrayScript, []string{key}, token+":").Err()
		})
		if err != nil {
			s.log.Warn("could not release a lock taken as Lock gave up; it expires by itself", "key", key, "error", err)
		}
	}()
}

// releaseStrayScript deletes a lock whose value starts with ARGV[1].
var releaseStrayScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func tokenOf(value string) string {
	t, _, _ := strings.Cut(value, ":")
	return t
}

// newToken returns a random owner token for one Lock call.
func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redis: lock token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
