package storage_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage"
)

// countingLoads is a wrapper that counts Loads; everything else passes
// through storage.PassThrough.
type countingLoads struct {
	storage.PassThrough
	loads atomic.Int64
}

func (c *countingLoads) Load(ctx context.Context, key string) ([]byte, error) {
	c.loads.Add(1)
	return c.PassThrough.Load(ctx, key)
}

// A wrapper returns itself through Expose, so that it has the optional
// interfaces of what it wraps and no others.
func ExampleExpose() {
	inner := &certmagic.FileStorage{Path: "/var/lib/certs"} // TryLock, no change feed
	s := storage.Expose(&countingLoads{PassThrough: storage.PassThrough{Storage: inner}})

	_, tryLocker := s.(certmagic.TryLocker)
	_, watcher := s.(storage.Watcher)
	fmt.Println("TryLocker:", tryLocker, "Watcher:", watcher)
	// Output: TryLocker: true Watcher: false
}
