// Package storage is certfleet's storage contract and the entry point to its
// backends.
//
// A backend is a certmagic.Storage that many processes may share. certfleet's
// backends also implement the optional interfaces below (lease renewal,
// fencing, change feeds); storagetest holds every backend to the same
// contract, and its CheckWrapper holds wrappers to Expose's.
//
// Backends register themselves under a URL scheme when their package is
// imported, like database/sql drivers:
//
//	import _ "github.com/certfleet/certfleet/storage/postgres"
//
//	s, err := storage.Open(ctx, "postgres://db.internal/certs")
package storage

import (
	"context"
	"errors"

	"github.com/caddyserver/certmagic"
)

// Storage is the contract every backend implements: certmagic's key-value
// store with distributed locks.
type Storage = certmagic.Storage

// ErrLockLost is returned (wrapped) by Unlock and RenewLockLease when the
// caller's lock expired or was taken over while it believed it held it; the
// work done under it may have raced with another holder.
var ErrLockLost = errors.New("lock lost")

// Fencer is implemented by storages whose locks carry fencing tokens: a number
// that grows each time the lock changes hands, so that a write made under a
// lock can be told apart from one made under a later holder's.
type Fencer interface {
	// FencingToken returns the token of the lock on name that this client
	// holds, or an error wrapping ErrLockLost if it holds none.
	FencingToken(ctx context.Context, name string) (uint64, error)
}

// The optional interfaces of a storage are certmagic.TryLocker,
// certmagic.LockLeaseRenewer, Fencer, Watcher and io.Closer. A wrapper (such
// as storage/encrypt) has exactly those of the storage it wraps: see Expose.

// Watcher is implemented by storages that report changes made by any client.
type Watcher interface {
	// Watch returns a channel that receives the key of every value stored or
	// deleted by any client of the same storage, until ctx ends, when the
	// channel is closed. An empty key means changes may have been missed (a
	// reconnect): the receiver should reload everything it cares about.
	Watch(ctx context.Context) (<-chan string, error)
}
