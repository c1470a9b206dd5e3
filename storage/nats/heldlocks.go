package nats

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/certfleet/certfleet/storage"
)

// HeldLocks returns the locks that are held now, sorted by name, for
// operators' tools: what it returns may change as soon as it is read. Owner
// is the random token of the Lock call that took the lock (the first field of
// the lease entry). Expires is when the entry was last written, by the NATS
// server's clock, plus the holder's TTL: an entry past that is left out, as a
// waiter would take it over (a waiter judges by its own clock, so a lock can
// be listed as expired a little before or after one does). Acquired and
// Token are zero: the entry is rewritten at every renewal and records
// neither when the lock was taken nor the revision that took it.
func (s *Storage) HeldLocks(ctx context.Context) ([]storage.HeldLock, error) {
	if s.g.Closed() {
		return nil, fmt.Errorf("nats: listing locks: %w", errClosed)
	}
	var out []storage.HeldLock
	err := s.req.Do(ctx, func(ctx context.Context) error {
		out = out[:0]
		w, err := s.kv.WatchFiltered(ctx, []string{"l.>"}, jetstream.IgnoreDeletes())
		if err != nil {
			return err
		}
		defer func() { _ = w.Stop() }()
		now := time.Now()
		for {
			var e jetstream.KeyValueEntry
			select {
			case e = <-w.Updates():
			case <-ctx.Done():
				return ctx.Err()
			}
			if e == nil {
				return nil // every current entry has been seen
			}
			tok, ok := strings.CutPrefix(e.Key(), "l.n")
			name, err := unescape(tok)
			ttl, okTTL := leaseTTL(e.Value())
			if !ok || err != nil || !okTTL {
				continue
			}
			expires := e.Created().Add(ttl)
			if !expires.After(now) {
				continue // lapsed: its holder died or stalled
			}
			owner, _, _ := strings.Cut(string(e.Value()), " ")
			out = append(out, storage.HeldLock{Name: name, Owner: owner, Expires: expires})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("nats: listing locks: %w", err)
	}
	slices.SortFunc(out, func(a, b storage.HeldLock) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
