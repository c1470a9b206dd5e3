package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/caddyserver/certmagic"
)

// PassThrough is a Wrapper that passes every call to Storage. A wrapper
// embeds it, overrides the methods it changes, and is returned through
// Expose:
//
//	type counting struct {
//		storage.PassThrough
//		loads atomic.Int64
//	}
//
//	func (c *counting) Load(ctx context.Context, key string) ([]byte, error) {
//		c.loads.Add(1)
//		return c.PassThrough.Load(ctx, key)
//	}
//
//	s := storage.Expose(&counting{PassThrough: storage.PassThrough{Storage: inner}})
//
// An optional method called although Storage lacks its interface (which
// Expose prevents) returns an error wrapping errors.ErrUnsupported.
type PassThrough struct {
	Storage
}

var _ Wrapper = PassThrough{}

// Unwrap returns Storage.
func (p PassThrough) Unwrap() Storage { return p.Storage }

// TryLock passes through to Storage's TryLock.
func (p PassThrough) TryLock(ctx context.Context, name string) (bool, error) {
	tl, ok := p.Storage.(certmagic.TryLocker)
	if !ok {
		return false, unsupported(p.Storage, "TryLock")
	}
	return tl.TryLock(ctx, name)
}

// RenewLockLease passes through to Storage's RenewLockLease.
func (p PassThrough) RenewLockLease(ctx context.Context, name string, d time.Duration) error {
	r, ok := p.Storage.(certmagic.LockLeaseRenewer)
	if !ok {
		return unsupported(p.Storage, "RenewLockLease")
	}
	return r.RenewLockLease(ctx, name, d)
}

// FencingToken passes through to Storage's FencingToken.
func (p PassThrough) FencingToken(ctx context.Context, name string) (uint64, error) {
	f, ok := p.Storage.(Fencer)
	if !ok {
		return 0, unsupported(p.Storage, "FencingToken")
	}
	return f.FencingToken(ctx, name)
}

// Watch passes through to Storage's Watch.
func (p PassThrough) Watch(ctx context.Context) (<-chan string, error) {
	w, ok := p.Storage.(Watcher)
	if !ok {
		return nil, unsupported(p.Storage, "Watch")
	}
	return w.Watch(ctx)
}

// Close passes through to Storage's Close.
func (p PassThrough) Close() error {
	c, ok := p.Storage.(io.Closer)
	if !ok {
		return unsupported(p.Storage, "Close")
	}
	return c.Close()
}

func unsupported(s Storage, method string) error {
	return fmt.Errorf("%s: %T has no such method: %w", method, s, errors.ErrUnsupported)
}
