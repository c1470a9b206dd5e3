package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/certfleet/certfleet/storage"
)

// HeldLocks returns the locks that are held now (taken, not released, lease
// running), sorted by name, for operators' tools: what it returns may change
// as soon as it is read. Owner is the random token of the Lock call that
// took the lock (the first part of the lock key's value); Expires is the key's
// remaining time to live added to the local clock; Acquired is zero, since
// Redis does not record it. Unlike List, this scans Redis with a pattern
// (the lock keys have no index): it costs a pass over the keyspace, which
// is fine for an operator's occasional look.
func (s *Storage) HeldLocks(ctx context.Context) ([]storage.HeldLock, error) {
	prefix := s.lockKey("")
	pattern := globEscape(prefix) + "*"
	var keys []string
	scan := func(ctx context.Context, c goredis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return it.Err()
	}
	err := retry(ctx, func(ctx context.Context) error {
		keys = keys[:0]
		if cc, ok := s.client.(*goredis.ClusterClient); ok {
			// Every key of s shares one hash slot, so exactly one master has them.
			return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(ctx, c) })
		}
		return scan(ctx, s.client)
	})
	if err != nil {
		return nil, fmt.Errorf("redis: listing locks: %w", err)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var gets []*goredis.StringCmd
	var ttls []*goredis.DurationCmd
	err = retry(ctx, func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		gets, ttls = gets[:0], ttls[:0]
		for _, k := range keys {
			gets = append(gets, pipe.Get(ctx, k))
			ttls = append(ttls, pipe.PTTL(ctx, k))
		}
		_, err := pipe.Exec(ctx)
		if err == goredis.Nil {
			err = nil // a lock released since the scan
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redis: listing locks: %w", err)
	}
	now := time.Now()
	var out []storage.HeldLock
	for i, k := range keys {
		v, err := gets[i].Result()
		ttl := ttls[i].Val()
		if err != nil || ttl <= 0 {
			continue // released or expired since the scan
		}
		token, f, ok := strings.Cut(v, ":")
		fence, ferr := strconv.ParseUint(f, 10, 64)
		if !ok || ferr != nil {
			continue
		}
		out = append(out, storage.HeldLock{Name: strings.TrimPrefix(k, prefix), Owner: token, Expires: now.Add(ttl), Token: fence})
	}
	return out, nil
}

// globEscape quotes the characters that SCAN's MATCH pattern gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
