package kvbackend

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Held is one lock a client holds: the backend's data about it (D), whether
// it was found lost, and its keepalive.
type Held[D any] struct {
	Name string
	Data D
	lost atomic.Bool
	stop context.CancelFunc
	done chan struct{}
}

// Lost reports whether a renewal found the lock gone or taken.
func (h *Held[D]) Lost() bool { return h.lost.Load() }

// MarkLost records that the lock is gone or taken.
func (h *Held[D]) MarkLost() { h.lost.Store(true) }

// Renew renews a held lock and reports whether it was still held.
type Renew[D any] func(ctx context.Context, h *Held[D]) (held bool, err error)

// Locks is the set of locks a client holds, each renewed every Every by a
// goroutine of the client's Group until it is released or found lost.
type Locks[D any] struct {
	g     *Group
	every time.Duration
	renew Renew[D]
	log   *slog.Logger

	mu sync.Mutex
	m  map[string]*Held[D]
}

// NewLocks returns an empty set whose keepalives run in g, call renew every
// every, and log failures to log.
func NewLocks[D any](g *Group, every time.Duration, renew Renew[D], log *slog.Logger) *Locks[D] {
	return &Locks[D]{g: g, every: every, renew: renew, log: log, m: make(map[string]*Held[D])}
}

// Hold records the lock name as held with data and starts its keepalive.
// It returns nil when the group is closed.
func (s *Locks[D]) Hold(name string, data D) *Held[D] {
	ctx, stop := context.WithCancel(s.g.Context())
	h := &Held[D]{Name: name, Data: data, stop: stop, done: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	started := s.g.Go(func(context.Context) {
		defer close(h.done)
		s.keepalive(ctx, h)
	})
	if !started {
		stop()
		return nil
	}
	if old := s.m[name]; old != nil {
		// Only possible when the old lock was lost without a release.
		old.stop()
	}
	s.m[name] = h
	return h
}

// keepalive renews h until ctx ends or the lock turns out to be lost.
// Failed renewals are retried at the next tick.
func (s *Locks[D]) keepalive(ctx context.Context, h *Held[D]) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.every)
		held, err := s.renew(rctx, h)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("lock keepalive failed; retrying", "lock", h.Name, "error", err)
		case err == nil && !held:
			h.MarkLost()
			s.log.Error("lock lost: it expired or another client took it", "lock", h.Name)
			return
		}
	}
}

// Get returns the lock name if it is held, else nil.
func (s *Locks[D]) Get(name string) *Held[D] {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

// Release stops the keepalive of the lock name, waits for it, and forgets
// the lock; it returns the lock, or nil if it was not held.
func (s *Locks[D]) Release(name string) *Held[D] {
	s.mu.Lock()
	h := s.m[name]
	if h != nil {
		delete(s.m, name)
	}
	s.mu.Unlock()
	if h != nil {
		h.stop()
		<-h.done
	}
	return h
}

// All returns the locks held.
func (s *Locks[D]) All() []*Held[D] {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*Held[D], 0, len(s.m))
	for _, h := range s.m {
		all = append(all, h)
	}
	return all
}
