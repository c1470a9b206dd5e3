package dns01

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// recordLocks serializes writes to one record name across the fleet with
// a storage lock per name. Within a process the lock is shared: writes from
// several goroutines may overlap (libdns providers must be safe for
// concurrent use), while writes from other members wait.
type recordLocks struct {
	storage Storage

	mu        sync.Mutex
	holds     map[string]*hold
	unlocking map[string]chan struct{} // closed when the storage lock is released
}

type hold struct {
	users int
	ready chan struct{} // closed once the storage lock is taken or failed
	err   error
}

// acquire takes the lock on name for the caller; release gives it back.
func (l *recordLocks) acquire(ctx context.Context, name string) (release func(), err error) {
	lockName := recordLockName + name
	for {
		l.mu.Lock()
		if l.holds == nil {
			l.holds = make(map[string]*hold)
		}
		h := l.holds[name]
		first := h == nil
		if first {
			h = &hold{ready: make(chan struct{})}
			l.holds[name] = h
		}
		h.users++
		l.mu.Unlock()

		if first {
			// Our own last holder may still be releasing the storage lock;
			// waiting for that is faster than polling the storage for it.
			l.mu.Lock()
			prev := l.unlocking[name]
			l.mu.Unlock()
			err := ctx.Err()
			if prev != nil {
				select {
				case <-prev:
				case <-ctx.Done():
					err = ctx.Err()
				}
			}
			if err == nil {
				err = l.storage.Lock(ctx, lockName)
			}
			l.mu.Lock()
			h.err = err
			if err != nil && l.holds[name] == h {
				delete(l.holds, name) // the next caller tries again
			}
			close(h.ready)
			l.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("dns01: taking the lock on record %s: %w", name, err)
			}
		} else {
			select {
			case <-h.ready:
			case <-ctx.Done():
				l.release(name, h, lockName)
				return nil, ctx.Err()
			}
			if h.err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				continue // the first caller gave up; try to take it ourselves
			}
		}
		var once sync.Once
		return func() { once.Do(func() { l.release(name, h, lockName) }) }, nil
	}
}

// release drops one user of h; the last one unlocks the storage lock.
func (l *recordLocks) release(name string, h *hold, lockName string) {
	l.mu.Lock()
	h.users--
	// The caller that takes the storage lock is a user until it releases,
	// so the last user is never one that gave up before the lock was taken.
	last := h.users == 0 && h.err == nil
	var done chan struct{}
	if last {
		if l.holds[name] == h {
			delete(l.holds, name)
		}
		if l.unlocking == nil {
			l.unlocking = make(map[string]chan struct{})
		}
		done = make(chan struct{})
		l.unlocking[name] = done
	}
	l.mu.Unlock()
	if !last {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = l.storage.Unlock(ctx, lockName)
	l.mu.Lock()
	if l.unlocking[name] == done {
		delete(l.unlocking, name)
	}
	close(done)
	l.mu.Unlock()
}
