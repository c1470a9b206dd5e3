package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/caddyserver/certmagic"
)

//go:generate go run ./internal/exposegen

// Wrapper is a storage that wraps another one and implements every optional
// storage interface — certmagic.TryLocker, certmagic.LockLeaseRenewer,
// Fencer, Watcher and io.Closer — by passing the call through. Expose turns
// it into a Storage that has only the optional interfaces the wrapped
// storage has.
type Wrapper interface {
	Storage
	certmagic.TryLocker
	certmagic.LockLeaseRenewer
	Fencer
	Watcher
	io.Closer
	// Unwrap returns the wrapped storage.
	Unwrap() Storage
}

// Expose returns w as a Storage that implements each optional storage
// interface (certmagic.TryLocker, certmagic.LockLeaseRenewer, Fencer,
// Watcher, io.Closer) exactly when w.Unwrap() does.
//
// Callers decide what to do by asking a storage which interfaces it has, so
// a wrapper that claims one its inner storage lacks misleads them: certmagic
// fetches ACME renewal information under TryLock when the storage is a
// TryLocker, and a wrapper whose TryLock can only fail turns that off. Every
// storage wrapper should therefore return Expose(itself) from its
// constructor, typed as Storage.
//
// The returned value also has Unwrap, returning w.Unwrap(), and String,
// describing w, which GoString, Format (every verb) and LogValue show too. w's other methods are not reachable through it.
func Expose(w Wrapper) Storage {
	inner := w.Unwrap()
	var mask uint
	if _, ok := inner.(certmagic.TryLocker); ok {
		mask |= tryLocker
	}
	if _, ok := inner.(certmagic.LockLeaseRenewer); ok {
		mask |= leaseRenewer
	}
	if _, ok := inner.(Fencer); ok {
		mask |= fencer
	}
	if _, ok := inner.(Watcher); ok {
		mask |= watcher
	}
	if _, ok := inner.(io.Closer); ok {
		mask |= closer
	}
	return withOptional(exposed{w, w}, w, mask)
}

// exposed is the part of what Expose returns that every combination has:
// the Storage methods, Unwrap and String.
type exposed struct {
	Storage
	w Wrapper
}

// Unwrap returns the storage the wrapper wraps.
func (e exposed) Unwrap() Storage { return e.w.Unwrap() }

// String describes the wrapper: its own String, or its type and what it
// wraps.
func (e exposed) String() string {
	if s, ok := e.w.(fmt.Stringer); ok {
		return s.String()
	}
	inner := fmt.Sprintf("%T", e.w.Unwrap())
	if s, ok := e.w.Unwrap().(fmt.Stringer); ok {
		inner = s.String()
	}
	return fmt.Sprintf("%T over %s", e.w, inner)
}

// GoString is String, for %#v.
func (e exposed) GoString() string { return e.String() }

// Format writes String for every verb: a wrapper such as encryption holds
// secrets, which printing it by reflection would show.
func (e exposed) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(e.String())) }

// LogValue is String, for slog.
func (e exposed) LogValue() slog.Value { return slog.StringValue(e.String()) }

// tryLock is certmagic.TryLocker without Unlock, which every Storage has:
// embedding both would make Unlock ambiguous.
type tryLock interface {
	TryLock(ctx context.Context, name string) (bool, error)
}
