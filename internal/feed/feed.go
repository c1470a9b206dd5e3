// Package feed fans one stream of changed storage keys out to any number of
// storage.Watcher channels, each with a bounded backlog, for backends whose
// engine delivers changes on one subscription (an etcd watch, a NATS KV
// watcher).
package feed

import (
	"context"
	"errors"
	"sync"
)

// Backlog is how many keys a slow receiver may fall behind before its
// backlog collapses into one "" (reload everything).
const Backlog = 1024

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("change feed closed")

// Hub is the fan-out. The zero value is ready to use; Close ends it.
type Hub struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	closed   bool
	watchers map[*watcher]struct{}
}

// watcher is one Subscribe call: a bounded backlog and the goroutine that
// feeds it to the receiver's channel.
type watcher struct {
	out   chan string
	wake  chan struct{} // capacity 1: the backlog is not empty
	stop  chan struct{} // closed by Close
	mu    sync.Mutex
	queue []string
}

// Subscribe returns a channel that receives every key broadcast from now on
// until ctx ends or the hub is closed; then the channel is closed. An empty
// key means keys may have been missed: the receiver should reload everything
// it cares about.
func (h *Hub) Subscribe(ctx context.Context) (<-chan string, error) {
	w := &watcher{out: make(chan string), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	if h.watchers == nil {
		h.watchers = make(map[*watcher]struct{})
	}
	h.watchers[w] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	go func() { // ends with ctx or Close, which waits for it
		defer h.wg.Done()
		defer close(w.out)
		w.run(ctx)
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}()
	return w.out, nil
}

// Len returns the number of active subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

// Broadcast queues key for every subscriber; it never blocks.
func (h *Hub) Broadcast(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.push(key)
	}
}

// Close ends every subscription, closing their channels, and waits for their
// goroutines. Later Subscribe calls fail with ErrClosed. Close is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for w := range h.watchers {
			close(w.stop)
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// push queues key, collapsing an overflowing backlog into "".
func (w *watcher) push(key string) {
	w.mu.Lock()
	if len(w.queue) >= Backlog {
		w.queue = append(w.queue[:0], "")
	} else {
		w.queue = append(w.queue, key)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers the backlog to w.out until ctx ends or the hub closes.
func (w *watcher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, key := range batch {
			select {
			case w.out <- key:
			case <-ctx.Done():
				return
			case <-w.stop:
				return
			}
		}
	}
}
