// Package changefeed fans one storage backend's change feed out to every
// Watch call: each subscriber gets its own channel fed from a bounded
// backlog, so a slow receiver never holds up the feed or the others. A
// receiver that falls Backlog keys behind gets one "" (reload everything)
// in place of its backlog, which is what storage.Watcher promises.
package changefeed

import (
	"context"
	"errors"
	"sync"
)

// Backlog is how many keys a subscriber may fall behind before its backlog
// collapses into one "".
const Backlog = 1024

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("change feed closed")

// Hub delivers published keys to its subscribers. The zero value is ready
// to use; Close ends every subscription and waits for their goroutines.
type Hub struct {
	mu     sync.Mutex
	subs   map[*sub]struct{}
	closed bool
	wg     sync.WaitGroup
}

// sub is one subscription: a bounded backlog and the goroutine that feeds
// it to the subscriber's channel.
type sub struct {
	out   chan string
	wake  chan struct{} // capacity 1: the backlog is not empty
	stop  chan struct{} // closed by Close
	mu    sync.Mutex
	queue []string
}

// Subscribe returns a channel that receives every key published from now on,
// until ctx ends or the hub is closed; then the channel is closed.
func (h *Hub) Subscribe(ctx context.Context) (<-chan string, error) {
	s := &sub{out: make(chan string), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if h.subs == nil {
		h.subs = make(map[*sub]struct{})
	}
	h.subs[s] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	go func() { // ends with ctx or Close
		defer h.wg.Done()
		defer close(s.out)
		s.run(ctx)
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
	}()
	return s.out, nil
}

// Publish queues key for every subscriber; "" asks them to reload
// everything. It never blocks on a receiver.
func (h *Hub) Publish(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.push(key)
	}
}

// Close ends every subscription (their channels close) and waits until
// their goroutines have returned. Later Subscribe calls fail; Close is
// idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for s := range h.subs {
			close(s.stop)
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// push queues key, collapsing an overflowing backlog into "".
func (s *sub) push(key string) {
	s.mu.Lock()
	if len(s.queue) >= Backlog {
		s.queue = append(s.queue[:0], "")
	} else {
		s.queue = append(s.queue, key)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run delivers the backlog to s.out until ctx ends or the hub closes.
func (s *sub) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, key := range batch {
			select {
			case s.out <- key:
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			}
		}
	}
}
