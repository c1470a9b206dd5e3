package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Listener timing: an idle listening connection is pinged every
// listenPingEvery, so that a dead connection is noticed even when nothing is
// written; reconnection backs off by listenBackoff.
const (
	listenPingEvery   = 15 * time.Second
	listenPingTimeout = 5 * time.Second
)

var listenBackoff = backoff.Policy{Base: 50 * time.Millisecond, Max: 5 * time.Second}

// maxPending bounds the keys queued for a watcher that does not keep up;
// past it they collapse into one "" (reload everything).
const maxPending = 4096

// feed receives the NOTIFY messages of one Storage on a dedicated
// connection and hands them to watchers and lock waiters.
type feed struct {
	s *Storage

	mu       sync.Mutex
	watchers map[*watcher]struct{}
	waiters  map[string]map[chan struct{}]struct{} // by lock name
}

func newFeed(s *Storage) *feed {
	return &feed{
		s:        s,
		watchers: make(map[*watcher]struct{}),
		waiters:  make(map[string]map[chan struct{}]struct{}),
	}
}

// start connects the listener, so that New fails if changes cannot be
// listened to, and then keeps it connected until Close.
func (f *feed) start(ctx context.Context) error {
	conn, err := f.connect(ctx)
	if err != nil {
		return fmt.Errorf("postgres storage: listening for changes: %w", err)
	}
	f.s.wg.Add(1)
	go f.run(conn)
	return nil
}

func (f *feed) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, f.s.listenConfig.Copy())
	if err != nil {
		return nil, err
	}
	for _, ch := range []string{f.s.dataChannel, f.s.lockChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			closeConn(conn)
			return nil, err
		}
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// run delivers notifications and reconnects after failures until Close.
// After a reconnect, watchers get "" because changes may have been missed.
func (f *feed) run(conn *pgx.Conn) {
	defer f.s.wg.Done()
	life := f.s.life
	for {
		err := f.receive(life, conn)
		closeConn(conn)
		if life.Err() != nil {
			return
		}
		f.s.log.Warn("change listener disconnected; reconnecting", "error", err)
		f.wakeAllWaiters()
		for attempt := 1; ; attempt++ {
			if backoff.Sleep(life, listenBackoff.Delay(attempt)) != nil {
				return
			}
			if conn, err = f.connect(life); err == nil {
				break
			}
			if life.Err() != nil {
				return
			}
		}
		f.s.log.Info("change listener reconnected")
		f.broadcast("")
		f.wakeAllWaiters()
	}
}

// receive dispatches notifications from conn until it fails or ctx ends.
func (f *feed) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPingEvery)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			f.dispatch(n)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !idle || conn.IsClosed():
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("pinging idle listener: %w", err)
		}
	}
}

func (f *feed) dispatch(n *pgconn.Notification) {
	switch n.Channel {
	case f.s.dataChannel:
		f.broadcast(n.Payload)
	case f.s.lockChannel:
		f.mu.Lock()
		for c := range f.waiters[n.Payload] {
			wake(c)
		}
		f.mu.Unlock()
	}
}

func (f *feed) broadcast(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers {
		w.push(key)
	}
}

func (f *feed) wakeAllWaiters() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cs := range f.waiters {
		for c := range cs {
			wake(c)
		}
	}
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// awaitRelease returns a channel that receives when the lock name may have
// been released, and a function to stop waiting.
func (f *feed) awaitRelease(name string) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	f.mu.Lock()
	if f.waiters[name] == nil {
		f.waiters[name] = make(map[chan struct{}]struct{})
	}
	f.waiters[name][c] = struct{}{}
	f.mu.Unlock()
	return c, func() {
		f.mu.Lock()
		delete(f.waiters[name], c)
		if len(f.waiters[name]) == 0 {
			delete(f.waiters, name)
		}
		f.mu.Unlock()
	}
}

// watcher queues the keys for one Watch call.
type watcher struct {
	mu      sync.Mutex
	pending []string
	signal  chan struct{} // capacity 1: pending is not empty
}

func (w *watcher) push(key string) {
	w.mu.Lock()
	if key == "" || len(w.pending) >= maxPending {
		// A resync subsumes every key queued before it.
		w.pending = append(w.pending[:0], "")
	} else {
		w.pending = append(w.pending, key)
	}
	w.mu.Unlock()
	wake(w.signal)
}

func (w *watcher) next() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return "", false
	}
	k := w.pending[0]
	w.pending = w.pending[1:]
	if len(w.pending) == 0 {
		w.pending = nil // let the backing array go
	}
	return k, true
}

// Watch returns a channel that receives the key of every value stored or
// deleted by any client of the same table, from the moment Watch returns
// until ctx ends or the storage is closed; then the channel is closed. An
// empty key means that changes may have been missed (the listener
// reconnected, or the receiver fell more than a few thousand keys behind):
// reload everything of interest.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("postgres storage: watch: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("postgres storage: watch: %w", errClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()

	w := &watcher{signal: make(chan struct{}, 1)}
	f := s.feed
	f.mu.Lock()
	f.watchers[w] = struct{}{}
	f.mu.Unlock()

	out := make(chan string, 16)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer func() {
			f.mu.Lock()
			delete(f.watchers, w)
			f.mu.Unlock()
		}()
		for {
			key, ok := w.next()
			if !ok {
				select {
				case <-w.signal:
					continue
				case <-ctx.Done():
					return
				case <-s.life.Done():
					return
				}
			}
			select {
			case out <- key:
			case <-ctx.Done():
				return
			case <-s.life.Done():
				return
			}
		}
	}()
	return out, nil
}
