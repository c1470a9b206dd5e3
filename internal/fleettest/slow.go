package fleettest

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/storage"
)

// SlowStorage makes the Loads of a storage take Delay longer, as remote
// storage far away does. Storage returns the slowed storage, which has
// exactly the optional interfaces (change feed, lease renewal, …) of the
// one it wraps.
type SlowStorage struct {
	delay atomic.Int64
	loads atomic.Int64
	view  storage.Storage
}

// NewSlowStorage wraps s; its Loads are not delayed until SetDelay.
func NewSlowStorage(s storage.Storage) *SlowStorage {
	slow := &SlowStorage{}
	slow.view = storage.Expose(&slowLoads{PassThrough: storage.PassThrough{Storage: s}, slow: slow})
	return slow
}

// Storage returns the slowed storage.
func (s *SlowStorage) Storage() storage.Storage { return s.view }

// SetDelay sets the time every Load waits before reading.
func (s *SlowStorage) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Loads returns the number of Load calls so far.
func (s *SlowStorage) Loads() int64 { return s.loads.Load() }

// slowLoads is the wrapper behind SlowStorage.Storage.
type slowLoads struct {
	storage.PassThrough
	slow *SlowStorage
}

// Load waits the delay, or until ctx ends, and then loads key.
func (s *slowLoads) Load(ctx context.Context, key string) ([]byte, error) {
	s.slow.loads.Add(1)
	if err := backoff.Sleep(ctx, time.Duration(s.slow.delay.Load())); err != nil {
		return nil, err
	}
	return s.PassThrough.Load(ctx, key)
}
