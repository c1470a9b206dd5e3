package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
)

// RetryPolicy retries a storage backend's operations that fail with
// transient I/O errors (a dropped connection, a timeout, a failover), so
// that a blip does not fail one of certmagic's three writes of a
// certificate and make it delete the others. The zero value makes up to 4
// attempts with backoff from 50 ms to 1 s and IsTransientIOError as the
// classifier. (dnsprovider.WithRetry is its counterpart for DNS provider
// APIs: it wraps a provider and honours their Retry-After.)
//
// Retrying is only safe for idempotent operations: Store, Load, Delete, Stat,
// List and Exists are; a lock acquisition is idempotent only if it is
// owner-token based.
type RetryPolicy struct {
	// MaxAttempts is the most tries in all, the first included; 0 means 4.
	MaxAttempts int
	// BaseDelay is the nominal pause before the first retry; 0 means 50 ms.
	// Each retry doubles it, with jitter (each pause is between half and
	// all of its nominal value), up to MaxDelay.
	BaseDelay time.Duration
	// MaxDelay caps the nominal pause; 0 means 1 s.
	MaxDelay time.Duration
	// Transient reports whether an error is worth retrying; nil means
	// IsTransientIOError. It is never asked about fs.ErrNotExist,
	// ErrLockLost or context errors, which are never retried.
	Transient func(error) bool
}

// Do calls op until it succeeds, fails with an error that is not transient,
// runs out of attempts, or ctx ends; it returns op's last error. Pauses
// between attempts end early when ctx does.
func (r RetryPolicy) Do(ctx context.Context, op func(context.Context) error) error {
	attempts := r.MaxAttempts
	if attempts <= 0 {
		attempts = 4
	}
	schedule := backoff.Policy{Base: r.BaseDelay, Max: r.MaxDelay}
	if schedule.Base <= 0 {
		schedule.Base = 50 * time.Millisecond
	}
	if schedule.Max <= 0 {
		schedule.Max = time.Second
	}
	transient := r.Transient
	if transient == nil {
		transient = IsTransientIOError
	}
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || attempt >= attempts || neverRetry(err) || !transient(err) || ctx.Err() != nil {
			return err
		}
		if backoff.Sleep(ctx, schedule.Delay(attempt)) != nil {
			return err
		}
	}
}

func neverRetry(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrLockLost) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// transientError marks an error as transient for IsTransientIOError.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// TransientIOError wraps err so that IsTransientIOError reports true for it;
// backends use it for their engine's retryable errors (serialization
// failures, failovers). TransientIOError(nil) is nil.
func TransientIOError(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// IsTransientIOError reports whether err, returned by a storage backend, is
// likely to go away on retry: an error wrapped with TransientIOError, a
// network timeout, a refused, reset or aborted connection, a broken pipe or
// a connection closed mid-reply. Missing keys, lost locks and context
// errors are never transient.
func IsTransientIOError(err error) bool {
	if err == nil || neverRetry(err) {
		return false
	}
	var te transientError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	}
	return false
}
