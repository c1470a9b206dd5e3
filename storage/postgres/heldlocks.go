package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/storage"
)

// HeldLocks returns the locks that are held now (taken, not released, lease
// running), sorted by name, for operators' tools: what it returns may change
// as soon as it is read. Owner is the random token of the acquisition, the
// lock row's owner column; expired leases are left out, judged by the
// database's clock as Lock judges them.
func (s *Storage) HeldLocks(ctx context.Context) ([]storage.HeldLock, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("postgres storage: listing locks: %w", errClosed)
	}
	var out []storage.HeldLock
	_, err := s.retry(ctx, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT name, owner, acquired_at, expires_at, fence FROM `+s.sql.locks+
			` WHERE owner <> '' AND expires_at > now() ORDER BY name`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.HeldLock, error) {
			var h storage.HeldLock
			var fence int64
			var acquired, expires time.Time
			err := r.Scan(&h.Name, &h.Owner, &acquired, &expires, &fence)
			h.Acquired, h.Expires, h.Token = acquired, expires, uint64(fence)
			return h, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres storage: listing locks: %w", err)
	}
	return out, nil
}
