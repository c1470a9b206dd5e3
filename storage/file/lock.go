package file

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/certfleet/certfleet/storage"
)

// A lock is a directory below ~locks (named by a hash of the lock name) that
// holds a sequence of generation files, 00000000000000000001, …02, and so on.
// The highest generation decides: its modification time is the end of its
// holder's lease (the epoch once released). Whoever finds the highest
// generation G expired or released creates G+1 by an atomic hard link, which
// fails if G+1 exists, so of many waiters exactly one wins. The holder renews
// its lease by moving G's modification time forward, after checking that no
// G+1 exists: if one does, the lock was taken over while the holder stalled
// past its lease, and the holder learns that it lost the lock. G is also the
// lock's fencing token.

const genDigits = 20

// released is the modification time of a released generation.
var released = time.Unix(1, 0)

// heldLock is a lock this client holds.
type heldLock struct {
	name string
	dir  string // the lock's directory
	gen  uint64
	stop chan struct{} // closed to stop the keepalive
	done chan struct{} // closed when the keepalive stopped

	mu    sync.Mutex
	lease time.Time // end of the lease this client set
	lost  bool
}

// lockInfo is written into each generation file for operators' benefit;
// the lock protocol never reads it.
type lockInfo struct {
	Name     string    `json:"name"`
	Owner    string    `json:"owner"`
	Acquired time.Time `json:"acquired"`
}

func (s *Storage) lockDirFor(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.lockDir, hex.EncodeToString(sum[:16]))
}

func genPath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d", genDigits, gen))
}

// generations returns the generations in dir, ascending.
func generations(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir) // sorted by name; fixed width makes that numeric order
	if notExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		if len(e.Name()) != genDigits {
			continue
		}
		if g, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
			gens = append(gens, g)
		}
	}
	return gens, nil
}

// tryAcquire makes one attempt to take the lock; it returns nil, nil if the
// lock is held by someone else.
func (s *Storage) tryAcquire(name string) (*heldLock, error) {
	dir := s.lockDirFor(name)
	for {
		gens, err := generations(dir)
		if err != nil {
			return nil, err
		}
		var top uint64
		if len(gens) > 0 {
			top = gens[len(gens)-1]
			fi, err := os.Stat(genPath(dir, top))
			if err != nil && !notExist(err) {
				return nil, err
			}
			if err == nil && fi.ModTime().After(time.Now()) {
				return nil, nil // held, lease running
			}
		}
		l, err := s.create(name, dir, top+1)
		if errors.Is(err, fs.ErrExist) {
			continue // another waiter took it first: look again
		}
		if err != nil || l != nil {
			return l, err
		}
	}
}

// create creates generation gen. It returns an error wrapping fs.ErrExist if
// gen exists, and nil, nil if a later generation exists (gen was left free by
// cleanup of old generations and is no longer current).
func (s *Storage) create(name, dir string, gen uint64) (*heldLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Write the file under a temporary name with its lease already set, then
	// link it into place: the generation appears complete and leased, or not
	// at all.
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	info, _ := json.Marshal(lockInfo{Name: name, Owner: owner, Acquired: time.Now().UTC()})
	_, err = tmp.Write(info)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	lease := time.Now().Add(s.ttl)
	if err := os.Chtimes(tmp.Name(), lease, lease); err != nil {
		return nil, err
	}
	path := genPath(dir, gen)
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, err // fs.ErrExist: someone else's generation
	}
	gens, err := generations(dir)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	if len(gens) == 0 || gens[len(gens)-1] != gen {
		os.Remove(path) // a stale generation nobody looks at; never current
		return nil, nil
	}
	// Drop old generations, keeping the previous one so that a waiter that
	// read it can still fail to create ours.
	for _, g := range gens {
		if g+1 < gen {
			os.Remove(genPath(dir, g))
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &heldLock{name: name, dir: dir, gen: gen, lease: lease, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// owner identifies this process in lock files.
var owner = func() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d (%s)", host, os.Getpid(), rand.Text()[:8])
}()

// Lock blocks until it holds the lock on name, ctx ends or the storage is
// closed. The lock is kept alive until Unlock; if it is lost meanwhile (this
// process stalled past LockTTL and another took it over), Unlock returns an
// error wrapping storage.ErrLockLost.
func (s *Storage) Lock(ctx context.Context, name string) error {
	w := wakerFor(s.lockDirFor(name))
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lock %q: %w", name, err)
		}
		wake := w.wait()
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		timer := time.NewTimer(delay/2 + mrand.N(delay/2+1))
		select {
		case <-ctx.Done():
		case <-s.done:
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// TryLock takes the lock on name if it is free and reports whether it did.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("lock %q: %w", name, err)
	}
	if s.isClosed() {
		return false, fmt.Errorf("lock %q: %w", name, ErrClosed)
	}
	l, err := s.tryAcquire(name)
	if err != nil {
		return false, fmt.Errorf("lock %q: %w", name, err)
	}
	if l == nil {
		return false, nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(l.done) // no keepalive was started
		_ = s.release(l)
		return false, fmt.Errorf("lock %q: %w", name, ErrClosed)
	}
	prev := s.held[name]
	s.held[name] = l
	s.wg.Add(1)
	s.mu.Unlock()
	if prev != nil {
		// A lock lost earlier and never unlocked: its keepalive has nothing
		// left to do.
		close(prev.stop)
	}
	go s.keepAlive(l)
	return true, nil
}

func (s *Storage) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// keepAlive renews l's lease every LockTTL/4 until it is released, lost, or
// the storage closes.
func (s *Storage) keepAlive(l *heldLock) {
	defer s.wg.Done()
	defer close(l.done)
	tick := time.NewTicker(s.ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-s.done:
			return
		case <-tick.C:
		}
		err := s.renew(l, 0)
		if errors.Is(err, storage.ErrLockLost) {
			s.log.Warn("lock lost: another process took it over after this one failed to renew it within the lock TTL",
				"lock", l.name, "ttl", s.ttl)
			return
		}
		if err != nil {
			s.log.Warn("renewing lock lease failed; retrying", "lock", l.name, "error", err)
		}
	}
}

// renew extends l's lease to at least now+LockTTL and now+d, never shortening
// it, after checking that it has no successor.
func (s *Storage) renew(l *heldLock, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	now := time.Now()
	lease := l.lease
	lease = later(lease, now.Add(s.ttl))
	lease = later(lease, now.Add(d))
	if err := os.Chtimes(genPath(l.dir, l.gen), lease, lease); err != nil {
		if notExist(err) {
			l.lost = true
			return fmt.Errorf("lock %q: its file was removed: %w", l.name, storage.ErrLockLost)
		}
		return err
	}
	l.lease = lease
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// check reports an error wrapping storage.ErrLockLost if l has a successor.
// l.mu is held.
func (l *heldLock) check() error {
	if l.lost {
		return fmt.Errorf("lock %q: %w", l.name, storage.ErrLockLost)
	}
	_, err := os.Lstat(genPath(l.dir, l.gen+1))
	switch {
	case err == nil:
		l.lost = true
		return fmt.Errorf("lock %q was taken over after its lease expired: %w", l.name, storage.ErrLockLost)
	case notExist(err):
		return nil
	default:
		return err
	}
}

// release stops l's keepalive and frees the lock unless it was lost.
func (s *Storage) release(l *heldLock) error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	err := os.Chtimes(genPath(l.dir, l.gen), released, released)
	if notExist(err) {
		l.lost = true
		return fmt.Errorf("lock %q: its file was removed: %w", l.name, storage.ErrLockLost)
	}
	if err != nil {
		return err
	}
	l.lost = true // no longer held: later checks fail
	wakerFor(l.dir).wake()
	return nil
}

// Unlock releases the lock on name. If the lock was lost while held, it
// leaves the new holder's lock alone and returns an error wrapping
// storage.ErrLockLost.
func (s *Storage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	l := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("unlock %q: this client does not hold the lock", name)
	}
	if err := s.release(l); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// RenewLockLease extends the lease of the lock on name to at least d from
// now; it never shortens it. The keepalive goes on renewing the lease as
// well.
func (s *Storage) RenewLockLease(_ context.Context, name string, d time.Duration) error {
	s.mu.Lock()
	l := s.held[name]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("renew lock lease %q: this client does not hold the lock: %w", name, storage.ErrLockLost)
	}
	if err := s.renew(l, d); err != nil {
		return fmt.Errorf("renew lock lease: %w", err)
	}
	return nil
}

// FencingToken returns the generation of the lock on name that this client
// holds; it grows each time the lock changes hands.
func (s *Storage) FencingToken(_ context.Context, name string) (uint64, error) {
	s.mu.Lock()
	l := s.held[name]
	s.mu.Unlock()
	if l == nil {
		return 0, fmt.Errorf("fencing token of lock %q: this client does not hold the lock: %w", name, storage.ErrLockLost)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return 0, err
	}
	return l.gen, nil
}

// waker lets waiters in this process learn at once that a lock they wait
// for was released, instead of at their next poll.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
}

var wakers sync.Map // lock directory → *waker

func wakerFor(dir string) *waker {
	if w, ok := wakers.Load(dir); ok {
		return w.(*waker)
	}
	w, _ := wakers.LoadOrStore(dir, &waker{})
	return w.(*waker)
}

// wait returns a channel closed at the next wake.
func (w *waker) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}
