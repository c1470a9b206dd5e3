package etcd

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/certfleet/certfleet/storage"
)

// HeldLocks returns the locks that are held now, sorted by name, for
// operators' tools: what it returns may change as soon as it is read. A lock
// key lives only while its lease runs (etcd deletes it when the lease
// lapses), so every key found is held. Owner is the random token of the Lock
// call that took it (the key's value); Expires is the lease's remaining time
// to live, in etcd's whole seconds, added to the local clock; Acquired is
// zero, since etcd does not record it; Token is the fencing token.
func (s *Storage) HeldLocks(ctx context.Context) ([]storage.HeldLock, error) {
	if s.g.Closed() {
		return nil, fmt.Errorf("etcd: listing locks: %w", errClosed)
	}
	var resp *clientv3.GetResponse
	err := s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = s.client.Get(ctx, s.lp, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: listing locks: %w", err)
	}
	var out []storage.HeldLock
	for _, kv := range resp.Kvs {
		var ttl *clientv3.LeaseTimeToLiveResponse
		err := s.req.Do(ctx, func(ctx context.Context) error {
			var err error
			ttl, err = s.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: listing locks: lease of %q: %w", kv.Key, err)
		}
		if ttl.TTL <= 0 {
			continue // the lease lapsed since the Get
		}
		out = append(out, storage.HeldLock{
			Name:    strings.TrimPrefix(string(kv.Key), s.lp),
			Owner:   string(kv.Value),
			Expires: time.Now().Add(time.Duration(ttl.TTL) * time.Second),
			Token:   uint64(kv.ModRevision),
		})
	}
	return out, nil
}
