package kvbackend

import (
	"context"
	"sync"

	"github.com/certfleet/certfleet/internal/changefeed"
)

// Feed is a client's change feed: one subscription to the engine, started
// by the first Watch and fanned out to every watcher by a changefeed.Hub.
type Feed struct {
	mu  sync.Mutex // held while starting, so that one subscription starts
	hub *changefeed.Hub
}

// Start prepares the engine's subscription within ctx, so that every
// change after it returns is seen, and returns the function that delivers
// the changes to h until its context (the Group's) ends.
type Start func(ctx context.Context) (run func(ctx context.Context, h *changefeed.Hub), err error)

// Watch returns a channel of changed keys until ctx ends or the group
// closes, starting the feed in g on first use. It fails with
// changefeed.ErrClosed once g is closed, or with start's error.
func (f *Feed) Watch(ctx context.Context, g *Group, start Start) (<-chan string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if g.Closed() {
		return nil, changefeed.ErrClosed
	}
	if f.hub == nil {
		run, err := start(ctx)
		if err != nil {
			return nil, err
		}
		h := &changefeed.Hub{}
		if !g.Go(func(ctx context.Context) { run(ctx, h) }) {
			return nil, changefeed.ErrClosed
		}
		f.hub = h
	}
	return f.hub.Subscribe(ctx)
}

// Close ends every watcher's channel. Call it from the Group's Close
// (before waiting), after which Watch fails.
func (f *Feed) Close() {
	f.mu.Lock()
	h := f.hub
	f.mu.Unlock()
	if h != nil {
		h.Close()
	}
}
