package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/certfleet/certfleet/internal/kvbackend"
	"github.com/certfleet/certfleet/storage"
)

// lockData is what this Storage keeps about a lock it holds.
type lockData struct {
	key   string // etcd key of the lock
	lease clientv3.LeaseID
	rev   int64 // mod revision of the key when taken: the fencing token
}

// heldLock is a lock this Storage holds, with the keepalive that refreshes
// its lease (kvbackend.Locks).
type heldLock = kvbackend.Held[lockData]

func (s *Storage) lockKey(name string) string { return s.lp + name }

// ttlSeconds is LockTTL in the whole seconds etcd leases are granted in.
func (s *Storage) ttlSeconds() int64 { return int64(s.lockTTL / time.Second) }

// Lock acquires the lock called name, waiting while another client holds it,
// until ctx ends. The lock is a key attached to a lease of LockTTL that a
// keepalive refreshes until Unlock; if its holder crashes or is cut off, the
// lease lapses and etcd deletes the key after at most LockTTL. A waiter
// watches the key and tries again as soon as it is deleted. Lock never
// returns holding the lock after ctx has ended.
func (s *Storage) Lock(ctx context.Context, name string) error {
	return s.lock(ctx, name, true)
}

// TryLock acquires the lock called name if it is free, without waiting.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	err := s.lock(ctx, name, false)
	if errors.Is(err, errBusy) {
		return false, nil
	}
	return err == nil, err
}

// errBusy is lock's answer to a non-waiting call on a held name.
var errBusy = errors.New("lock is held")

func (s *Storage) lock(ctx context.Context, name string, wait bool) (err error) {
	if s.g.Closed() {
		return fmt.Errorf("etcd: lock %q: %w", name, errClosed)
	}
	token, err := newToken()
	if err != nil {
		return err
	}
	key := s.lockKey(name)
	var lease clientv3.LeaseID
	defer func() {
		if err != nil && lease != 0 {
			// The key may have been written although the reply was lost or
			// the caller gave up: revoking the lease deletes it, so that no
			// lock outlives the call.
			s.revokeStray(lease)
		}
	}()
	for {
		if lease == 0 {
			err = s.req.Do(ctx, func(ctx context.Context) error {
				resp, err := s.client.Grant(ctx, s.ttlSeconds())
				if err == nil {
					lease = resp.ID
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("etcd: lock %q: granting a lease: %w", name, withCtxErr(ctx, err))
			}
		}
		var resp *clientv3.TxnResponse
		err = s.req.Do(ctx, func(ctx context.Context) error {
			var err error
			resp, err = s.client.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, token, clientv3.WithLease(lease))).
				Else(clientv3.OpGet(key)).
				Commit()
			return err
		})
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			// The lease lapsed while this call waited: take a fresh one.
			lease = 0
			continue
		case err != nil:
			return fmt.Errorf("etcd: lock %q: %w", name, withCtxErr(ctx, err))
		case ctx.Err() != nil:
			return fmt.Errorf("etcd: lock %q: %w", name, ctx.Err())
		}
		rev := resp.Header.Revision
		if !resp.Succeeded {
			kvs := resp.Responses[0].GetResponseRange().Kvs
			if len(kvs) == 1 && string(kvs[0].Value) == token {
				// An earlier attempt of ours went through; its reply was lost.
				resp.Succeeded, rev = true, kvs[0].ModRevision
			}
		}
		if resp.Succeeded {
			if s.locks.Hold(name, lockData{key: key, lease: lease, rev: rev}) == nil {
				return fmt.Errorf("etcd: lock %q: %w", name, errClosed)
			}
			return nil
		}
		if !wait {
			return errBusy
		}
		if err = s.awaitDelete(ctx, key, resp.Header.Revision); err != nil {
			return fmt.Errorf("etcd: lock %q: %w", name, err)
		}
		// The lease aged while this call waited, up to a whole LockTTL: a
		// lock taken with it now could lapse before its first keepalive.
		// Renew it to a full LockTTL first.
		err = s.req.Do(ctx, func(ctx context.Context) error {
			_, err := s.client.KeepAliveOnce(ctx, lease)
			return err
		})
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			lease = 0
		case err != nil:
			return fmt.Errorf("etcd: lock %q: renewing the lease while waiting: %w", name, withCtxErr(ctx, err))
		}
	}
}

// withCtxErr returns err, wrapping ctx's error too when ctx has ended: a
// request cut short by its deadline may come back as the server's own
// timeout ("request timed out") rather than as the context's error, and
// callers match the context's error.
func withCtxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w: %w", ctx.Err(), err)
}

// awaitDelete returns when key is deleted after revision rev, when LockTTL
// passes (a safety net should the watch miss the deletion), or with ctx's
// error when ctx ends.
func (s *Storage) awaitDelete(ctx context.Context, key string, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, s.lockTTL)
	defer cancel()
	ch := s.client.Watch(clientv3.WithRequireLeader(wctx), key, clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	for resp := range ch {
		if resp.Err() != nil || resp.Canceled {
			break
		}
		for _, ev := range resp.Events {
			if ev.Type == mvccpb.DELETE {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// refresh renews l's lease to a full LockTTL and reports whether the lease,
// and with it the lock, still exists: etcd deletes a lock key only when its
// holder releases it or its lease lapses.
func (s *Storage) refresh(ctx context.Context, l *heldLock) (bool, error) {
	var ttl int64
	err := s.req.Do(ctx, func(ctx context.Context) error {
		resp, err := s.client.KeepAliveOnce(ctx, l.Data.lease)
		if err == nil {
			ttl = resp.TTL
		}
		return err
	})
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return ttl > 0, nil
}

// held returns the lock name this Storage holds, or an error wrapping
// storage.ErrLockLost.
func (s *Storage) held(op, name string) (*heldLock, error) {
	if l := s.locks.Get(name); l != nil {
		return l, nil
	}
	return nil, fmt.Errorf("etcd: %s %q: this client holds no such lock: %w", op, name, storage.ErrLockLost)
}

// Unlock releases the lock called name: it deletes the lock key only if it
// is still the one this client wrote (same mod revision), then revokes the
// lease. If the lease lapsed and another client took the lock meanwhile,
// Unlock leaves that client's lock alone and returns an error wrapping
// storage.ErrLockLost: the work done under the lock may have raced with
// that client's.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	l := s.locks.Release(name)
	if l == nil {
		return fmt.Errorf("etcd: unlock %q: this client holds no such lock: %w", name, storage.ErrLockLost)
	}
	var resp *clientv3.TxnResponse
	err := s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(l.Data.key), "=", l.Data.rev)).
			Then(clientv3.OpDelete(l.Data.key)).
			Commit()
		return err
	})
	if err != nil {
		s.revokeStray(l.Data.lease)
		return fmt.Errorf("etcd: unlock %q (it is freed when its lease lapses, within %s): %w", name, s.lockTTL, err)
	}
	if !resp.Succeeded && !l.Lost() {
		// Gone or replaced: by this very release if an earlier attempt went
		// through unacknowledged, or by etcd when the lease lapsed. Only the
		// lease lapsing deletes the key behind its holder's back, so a live
		// lease means the key was this client's until this release.
		ttl, err := s.client.TimeToLive(ctx, l.Data.lease)
		resp.Succeeded = err == nil && ttl.TTL > 0
	}
	s.revokeStray(l.Data.lease)
	if !resp.Succeeded || l.Lost() {
		return fmt.Errorf("etcd: unlock %q: the lock's lease expired or another client took it: %w", name, storage.ErrLockLost)
	}
	return nil
}

// RenewLockLease checks that this client still holds the lock called name
// and renews its lease to a full LockTTL at once. The keepalive goes on
// renewing it as long as this Storage is open, so the lock lasts as long as
// its holder needs it (leaseDuration longer than LockTTL is not a reason to
// keep it from others after the holder died). It fails with an error
// wrapping storage.ErrLockLost when the lease is gone.
func (s *Storage) RenewLockLease(ctx context.Context, name string, leaseDuration time.Duration) error {
	l, err := s.held("renew lease of", name)
	if err != nil {
		return err
	}
	if l.Lost() {
		return fmt.Errorf("etcd: renew lease of %q: %w", name, storage.ErrLockLost)
	}
	ok, err := s.refresh(ctx, l)
	switch {
	case err != nil:
		return fmt.Errorf("etcd: renew lease of %q: %w", name, err)
	case !ok:
		l.MarkLost()
		return fmt.Errorf("etcd: renew lease of %q: the lock's lease expired: %w", name, storage.ErrLockLost)
	}
	return nil
}

// FencingToken returns the fencing token of the lock called name, which
// this client must hold: the etcd revision at which it took the lock (the
// lock key's mod revision). Revisions grow with every write to the cluster,
// so a later holder's token is always larger. It checks with etcd that the
// lock is still held.
func (s *Storage) FencingToken(ctx context.Context, name string) (uint64, error) {
	l, err := s.held("fencing token of", name)
	if err != nil {
		return 0, err
	}
	var resp *clientv3.GetResponse
	err = s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = s.client.Get(ctx, l.Data.key)
		return err
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("etcd: fencing token of %q: %w", name, err)
	case len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != l.Data.rev || l.Lost():
		return 0, fmt.Errorf("etcd: fencing token of %q: the lock's lease expired or another client took it: %w", name, storage.ErrLockLost)
	}
	return uint64(l.Data.rev), nil
}

// revokeStray revokes lease in the background, deleting any key attached to
// it. Errors are only logged: the lease lapses by itself after LockTTL.
func (s *Storage) revokeStray(lease clientv3.LeaseID) {
	s.g.Go(func(gctx context.Context) {
		ctx, cancel := context.WithTimeout(gctx, s.timeout)
		defer cancel()
		_, err := s.client.Revoke(ctx, lease)
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) && ctx.Err() == nil {
			s.log.Warn("could not revoke a lock lease; it lapses by itself", "lease", int64(lease), "error", err)
		}
	})
}

// newToken returns a random owner token for one Lock call.
func newToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("etcd: lock token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
