package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/internal/changefeed"
)

// watchHealthCheck is how often an idle subscription is pinged, so that a
// dead connection is noticed and replaced.
const watchHealthCheck = 2 * time.Second

// resubscribe paces new subscriptions after the server ended one.
var resubscribe = backoff.Policy{Base: 50 * time.Millisecond, Max: 2 * time.Second}

// Watch returns a channel that receives the key of every value stored or
// deleted through any client with the same Prefix, until ctx ends or s is
// closed; then the channel is closed. An empty key means changes may have
// been missed (the subscription reconnected, or the receiver fell more than
// 1024 keys behind): reload everything of interest. When Watch returns, the
// subscription is active: every later change is reported.
//
// One subscription serves every Watch of a Storage. In Cluster it is a
// sharded one (SSUBSCRIBE, Redis 7): the storage's channel hashes to the
// storage's slot, so the writes' SPUBLISH and the subscription meet on the
// shard that holds the data, and no message crosses the cluster bus to
// every node, as plain PUBLISH does in Cluster.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	h, err := s.hub(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := h.Subscribe(ctx)
	if errors.Is(err, changefeed.ErrClosed) {
		err = goredis.ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("redis: watch: %w", err)
	}
	return ch, nil
}

// hub returns the fan-out of the subscription, starting it on first use.
// Starting waits for Redis to confirm the subscription, within ctx.
func (s *Storage) hub(ctx context.Context) (*changefeed.Hub, error) {
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
	ps, err := s.subscribe(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis: watch: subscribing: %w", err)
	}
	h = &changefeed.Hub{}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = ps.Close()
		return nil, fmt.Errorf("redis: watch: %w", goredis.ErrClosed)
	}
	s.wg.Add(1)
	go func() { // ends at Close, which cancels s.ctx
		defer s.wg.Done()
		s.follow(ps, h)
	}()
	s.watch = h
	return h, nil
}

// subscribe subscribes to the storage's channel and waits for Redis to
// confirm it.
func (s *Storage) subscribe(ctx context.Context) (*goredis.PubSub, error) {
	var ps *goredis.PubSub
	if s.mode == modeCluster {
		ps = s.client.SSubscribe(ctx, s.channel())
	} else {
		ps = s.client.Subscribe(ctx, s.channel())
	}
	err := retry(ctx, func(ctx context.Context) error {
		_, err := ps.Receive(ctx) // the confirmation
		return err
	})
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// follow passes the messages of ps to h until s is closed. go-redis
// reconnects a broken subscription by itself, and each reconnection is
// passed on as "" (messages may have been lost meanwhile). A Cluster node
// that stops serving the storage's slot ends the sharded subscription
// (SUNSUBSCRIBE): follow then subscribes again, where the slot is now.
func (s *Storage) follow(ps *goredis.PubSub, h *changefeed.Hub) {
	for {
		ended := s.relay(ps, h)
		_ = ps.Close()
		if !ended {
			return // closed
		}
		s.log.Info("change feed ended by the server (slot moved?); subscribing again")
		h.Publish("")
		for n := 0; ; n++ {
			if backoff.Sleep(s.ctx, resubscribe.Delay(n)) != nil {
				return
			}
			var err error
			ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
			ps, err = s.subscribe(ctx)
			cancel()
			if err == nil {
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("change feed: subscribing again failed; retrying", "error", err)
		}
		h.Publish("")
	}
}

// relay passes the messages of ps to h until s is closed (false) or the
// server ends the subscription (true).
func (s *Storage) relay(ps *goredis.PubSub, h *changefeed.Hub) (ended bool) {
	msgs := ps.ChannelWithSubscriptions(
		goredis.WithChannelSize(changefeed.Backlog),
		goredis.WithChannelHealthCheckInterval(watchHealthCheck),
	)
	for {
		select {
		case <-s.ctx.Done():
			return false
		case m, ok := <-msgs:
			if !ok {
				return false
			}
			switch m := m.(type) {
			case *goredis.Message:
				h.Publish(m.Payload)
			case *goredis.Subscription:
				if m.Kind == "sunsubscribe" || m.Kind == "unsubscribe" {
					return true // never asked for: the server ended it
				}
				// Only a reconnect subscribes again: messages may have been lost.
				s.log.Info("change feed reconnected; asking watchers to reload")
				h.Publish("")
			}
		}
	}
}
