package redis

import (
	"context"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Change feed tuning.
const (
	// watchQueue is how many keys a slow watcher may fall behind before its
	// backlog collapses into one "" (reload everything).
	watchQueue = 1024
	// watchHealthCheck is how often an idle subscription is pinged, so that
	// a dead connection is noticed and replaced.
	watchHealthCheck = 2 * time.Second
)

// hub owns the one pub/sub subscription of a Storage and fans its messages
// out to every watcher.
type hub struct {
	ps   *goredis.PubSub
	done chan struct{} // closed when the dispatcher has returned

	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

// watcher is one Watch call: a bounded backlog and the goroutine that feeds
// it to the caller's channel.
type watcher struct {
	out    chan string
	wake   chan struct{} // capacity 1: backlog is not empty
	mu     sync.Mutex
	queue  []string
	closed chan struct{} // closed by the hub at Close
}

// Watch returns a channel that receives the key of every value stored or
// deleted through any client with the same Prefix, until ctx ends or s is
// closed; then the channel is closed. An empty key means changes may have
// been missed (the subscription reconnected, or the receiver fell more than
// 1024 keys behind): reload everything of interest. When Watch returns, the
// subscription is active: every later change is reported.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	h, err := s.hub(ctx)
	if err != nil {
		return nil, err
	}
	w := &watcher{
		out:    make(chan string),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	h.mu.Lock()
	if h.watchers == nil { // the hub has been closed
		h.mu.Unlock()
		return nil, fmt.Errorf("redis: watch: %w", goredis.ErrClosed)
	}
	h.watchers[w] = struct{}{}
	// Added while the hub is open, hence before Close waits for s.wg.
	s.wg.Add(1)
	h.mu.Unlock()

	go func() {
		defer s.wg.Done()
		defer close(w.out)
		w.run(ctx)
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}()
	return w.out, nil
}

// hub returns the subscription, starting it on first use. Starting waits for
// Redis to confirm the subscription, within ctx.
func (s *Storage) hub(ctx context.Context) (*hub, error) {
	// watchMu, not mu, is held across the network round trips, so that
	// locks and Close are not held up by a slow subscription.
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	s.mu.Lock()
	h, closed := s.watch, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("redis: watch: %w", goredis.ErrClosed)
	case h != nil:
		return h, nil
	}

	ps := s.client.Subscribe(ctx, s.channel())
	err := retry(ctx, func(ctx context.Context) error {
		_, err := ps.Receive(ctx) // the confirmation
		return err
	})
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("redis: watch: subscribing: %w", err)
	}
	h = &hub{ps: ps, done: make(chan struct{}), watchers: make(map[*watcher]struct{})}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ps.Close()
		return nil, fmt.Errorf("redis: watch: %w", goredis.ErrClosed)
	}
	msgs := ps.ChannelWithSubscriptions(
		goredis.WithChannelSize(watchQueue),
		goredis.WithChannelHealthCheckInterval(watchHealthCheck),
	)
	s.wg.Add(1)
	go func() { // ends when Close closes ps, which closes msgs
		defer s.wg.Done()
		defer close(h.done)
		for m := range msgs {
			switch m := m.(type) {
			case *goredis.Message:
				h.broadcast(m.Payload)
			case *goredis.Subscription:
				// Only a reconnect resubscribes: messages may have been lost.
				s.log.Info("change feed reconnected; asking watchers to reload")
				h.broadcast("")
			}
		}
	}()
	s.watch = h
	return h, nil
}

// broadcast queues key for every watcher.
func (h *hub) broadcast(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		w.push(key)
	}
}

// close ends the subscription and every watcher, and waits for the
// dispatcher.
func (h *hub) close() {
	_ = h.ps.Close()
	<-h.done
	h.mu.Lock()
	for w := range h.watchers {
		close(w.closed)
	}
	h.watchers = nil
	h.mu.Unlock()
}

// push queues key, collapsing an overflowing backlog into "".
func (w *watcher) push(key string) {
	w.mu.Lock()
	if len(w.queue) >= watchQueue {
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
		case <-w.closed:
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
			case <-w.closed:
				return
			}
		}
	}
}
