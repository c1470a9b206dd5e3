package nats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/internal/changefeed"
)

// watchRetry paces restarts of a failed watcher.
var watchRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}

// Watch returns a channel that receives the key of every value stored or
// deleted through any client of the same bucket, until ctx ends or s is
// closed; then the channel is closed. It rides on one KV watcher (an
// ordered JetStream consumer, which resumes by itself after a reconnect)
// per Storage. Should the watcher have to be recreated, the channel
// receives "": reload everything of interest. The same happens when the
// receiver falls more than 1024 keys behind. When Watch returns, the
// watcher is established: every later change is reported.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	ch, err := s.feed.Watch(ctx, s.g, func(ctx context.Context) (func(context.Context, *changefeed.Hub), error) {
		w, err := s.newWatcher(ctx)
		return func(ctx context.Context, h *changefeed.Hub) { s.runFeed(ctx, h, w) }, err
	})
	if err != nil {
		return nil, fmt.Errorf("nats: watch: %w", err)
	}
	return ch, nil
}

// newWatcher creates a watcher of the value keys within ctx; the watcher
// lives until Close.
func (s *Storage) newWatcher(ctx context.Context) (jetstream.KeyWatcher, error) {
	var w jetstream.KeyWatcher
	err := s.req.Do(ctx, func(context.Context) error {
		var err error
		w, err = s.kv.Watch(s.g.Context(), "v.>", jetstream.UpdatesOnly(), jetstream.MetaOnly())
		return err
	})
	return w, err
}

// runFeed delivers the watcher's keys until ctx ends (at Close),
// recreating the watcher when it ends.
func (s *Storage) runFeed(ctx context.Context, h *changefeed.Hub, w jetstream.KeyWatcher) {
	for fails := 0; ; {
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			key, err := keyOf(e.Key())
			if err != nil {
				s.log.Warn("change feed: a key in the bucket was not written by this package", "key", e.Key())
				continue
			}
			h.Publish(key)
			fails = 0
		}
		_ = w.Stop()
		for {
			if ctx.Err() != nil {
				return
			}
			fails++
			if backoff.Sleep(ctx, watchRetry.Delay(fails)) != nil {
				return
			}
			var err error
			if w, err = s.newWatcher(ctx); err == nil {
				s.log.Info("change feed restarted; asking watchers to reload")
				h.Publish("")
				break
			}
		}
	}
}
