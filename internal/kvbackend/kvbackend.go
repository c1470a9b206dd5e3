// Package kvbackend holds what certfleet's key-value storage backends (etcd,
// NATS) share: key normalization, requests bounded per attempt and retried,
// the owner of a client's background goroutines, and the set of locks a
// client holds with their keepalives. The backends differ in how they take,
// renew and release a lock; the bookkeeping around it is the same.
package kvbackend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/storage"
)

// CleanKey normalizes a storage key by trimming slashes; root reports
// whether nothing is left. Keys with an empty component are rejected.
// backend names the package in errors.
func CleanKey(backend, key string) (k string, root bool, err error) {
	k = strings.Trim(key, "/")
	if strings.Contains(k, "//") {
		return "", false, fmt.Errorf("%s: key %q has an empty path component: remove the doubled '/'", backend, key)
	}
	return k, k == "", nil
}

// FileKey is CleanKey for keys that must name a value.
func FileKey(backend, key string) (string, error) {
	k, root, err := CleanKey(backend, key)
	if err == nil && root {
		err = fmt.Errorf("%s: key %q is empty: name a value such as \"certificates/example.com.crt\"", backend, key)
	}
	return k, err
}

// Requests runs a backend's requests: each attempt bounded by Timeout,
// transient failures retried by Retry within the caller's context.
type Requests struct {
	Retry   storage.RetryPolicy
	Timeout time.Duration
	Server  string // "etcd", "NATS": names the server in errors
}

// Do runs op until it succeeds or fails for good. An attempt that runs out
// of its own Timeout (not the caller's deadline) counts as transient, so
// that a server that stopped answering costs one Timeout and the next try
// may reach another.
func (r Requests) Do(ctx context.Context, op func(ctx context.Context) error) error {
	return r.Retry.Do(ctx, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, r.Timeout)
		defer cancel()
		err := op(actx)
		if err != nil && actx.Err() != nil && ctx.Err() == nil {
			// Not wrapping the context error: it would read as final.
			return storage.TransientIOError(fmt.Errorf("no answer from %s within %s", r.Server, r.Timeout))
		}
		return err
	})
}

// Group owns a client's background goroutines (keepalives, change feeds,
// cleanups): Go starts one unless the group is closed, Close ends their
// context and waits for them.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// NewGroup returns an open group.
func NewGroup() *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{ctx: ctx, cancel: cancel}
}

// Context returns the context that ends at Close.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs f in a goroutine with the group's context, and reports false
// (running nothing) when the group is closed.
func (g *Group) Go(f func(ctx context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.ctx)
	}()
	return true
}

// Closed reports whether Close has been called.
func (g *Group) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close cancels the group's context and waits for its goroutines. It
// reports whether this call closed the group (false when already closed).
// before, if not nil, runs once the group is marked closed and before the
// wait, to stop what the goroutines wait on.
func (g *Group) Close(before func()) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	if before != nil {
		before()
	}
	g.wg.Wait()
	return true
}
