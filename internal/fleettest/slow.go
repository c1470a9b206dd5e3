package fleettest

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
)

// SlowStorage is a certmagic.Storage whose Load takes Delay longer than the
// storage it wraps, as remote storage far away does. It has only the methods
// of certmagic.Storage: no change feed, no lock lease renewal.
type SlowStorage struct {
	certmagic.Storage
	delay atomic.Int64
	loads atomic.Int64
}

// NewSlowStorage wraps s; its Loads are not delayed until SetDelay.
func NewSlowStorage(s certmagic.Storage) *SlowStorage { return &SlowStorage{Storage: s} }

// SetDelay sets the time every Load waits before reading.
func (s *SlowStorage) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Loads returns the number of Load calls so far.
func (s *SlowStorage) Loads() int64 { return s.loads.Load() }

// Load waits the delay, or until ctx ends, and then loads key.
func (s *SlowStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads.Add(1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return s.Storage.Load(ctx, key)
}
