package storage

import (
	"context"
	"time"
)

// HeldLock is a lock that was held when a LockLister listed it.
type HeldLock struct {
	Name     string    // the lock's name, such as "issue_cert_example.com"
	Owner    string    // the holder, as the backend records it (a token or a host and process)
	Acquired time.Time // when the holder took it; zero when the backend does not record it
	Expires  time.Time // when the lease ends unless the holder renews it
	Token    uint64    // the fencing token (the lock's generation)
}

// LockLister is a storage that can list the locks held in it, for
// operators' tools such as certfleet status. Every built-in backend
// implements it. What HeldLocks returns may change as soon as it is read.
type LockLister interface {
	// HeldLocks returns the locks held now (taken, not released, lease
	// running), sorted by name. Expired leases are left out.
	HeldLocks(ctx context.Context) ([]HeldLock, error)
}
