package etcd

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/internal/changefeed"
)

// watchRetry paces restarts of a failed watch.
var watchRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}

// Watch returns a channel that receives the key of every value stored or
// deleted through any client with the same Prefix, until ctx ends or s is
// closed; then the channel is closed. It rides on one etcd watch per
// Storage. A watch that breaks (a member died, the connection dropped) is
// resumed from the last revision it delivered, so nothing is missed; only
// when etcd has compacted its history past that revision are changes lost,
// and then the channel receives "": reload everything of interest. The
// same happens when the receiver falls more than 1024 keys behind. When
// Watch returns, the watch is established: every later change is reported.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	ch, err := s.feed.Watch(ctx, s.g, func(ctx context.Context) (func(context.Context, *changefeed.Hub), error) {
		// Watch from the revision after the current one: every change after
		// Watch returns is seen.
		var rev int64
		err := s.req.Do(ctx, func(ctx context.Context) error {
			resp, err := s.client.Get(ctx, s.vp, clientv3.WithCountOnly())
			if err == nil {
				rev = resp.Header.Revision
			}
			return err
		})
		return func(ctx context.Context, h *changefeed.Hub) { s.runFeed(ctx, h, rev+1) }, err
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: watch: %w", err)
	}
	return ch, nil
}

// runFeed watches the value keys from revision next until ctx ends,
// restarting the watch whenever it ends.
func (s *Storage) runFeed(ctx context.Context, h *changefeed.Hub, next int64) {
	for fails := 0; ctx.Err() == nil; {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := s.client.Watch(wctx, s.vp, clientv3.WithPrefix(), clientv3.WithRev(next))
		progressed := false
		for resp := range ch {
			if resp.CompactRevision != 0 {
				s.log.Warn("change feed fell behind etcd's compaction; asking watchers to reload", "compacted", resp.CompactRevision)
				h.Publish("")
				next = resp.CompactRevision
				break
			}
			if err := resp.Err(); err != nil {
				s.log.Info("change feed interrupted; resuming", "error", err)
				break
			}
			for _, ev := range resp.Events {
				h.Publish(string(ev.Kv.Key[len(s.vp):]))
				next = ev.Kv.ModRevision + 1
				progressed = true
			}
		}
		cancel()
		if progressed {
			fails = 0
		}
		fails++
		if backoff.Sleep(ctx, watchRetry.Delay(fails)) != nil {
			return
		}
	}
}
