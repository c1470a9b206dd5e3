package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// Retry retries operations that fail with transient errors (a dropped
// connection, a timeout, a failover), so that a blip does not fail one of
// certmagic's three writes of a certificate and make it delete the others.
// The zero value retries 4 times with backoff from 50 ms to 1 s and
// IsTransient as the classifier.
//
// Retrying is only safe for idempotent operations: Store, Load, Delete, Stat,
// List and Exists are; a lock acquisition is idempotent only if it is
// owner-token based.
type Retry struct {
	// Attempts is the number of tries in all; 0 means 4.
	Attempts int
	// MinBackoff is the pause before the first retry; 0 means 50 ms. Each
	// retry doubles it, with jitter, up to MaxBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps the pause; 0 means 1 s.
	MaxBackoff time.Duration
	// Transient reports whether an error is worth retrying; nil means
	// IsTransient. It is never asked about fs.ErrNotExist, ErrLockLost or
	// context errors, which are never retried.
	Transient func(error) bool
}

// Do calls op until it succeeds, fails with an error that is not transient,
// runs out of attempts, or ctx ends; it returns op's last error. Pauses
// between attempts end early when ctx does.
func (r Retry) Do(ctx context.Context, op func(context.Context) error) error {
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	backoff := r.MinBackoff
	if backoff <= 0 {
		backoff = 50 * time.Millisecond
	}
	maxBackoff := r.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = time.Second
	}
	transient := r.Transient
	if transient == nil {
		transient = IsTransient
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = op(ctx)
		if err == nil || attempt >= attempts || neverRetry(err) || !transient(err) || ctx.Err() != nil {
			return err
		}
		// Full jitter in [backoff/2, backoff) keeps a fleet from retrying in step.
		pause := backoff/2 + rand.N(backoff/2+1)
		timer := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func neverRetry(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrLockLost) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// transientError marks an error as transient for IsTransient.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// Transient wraps err so that IsTransient reports true for it; backends use it
// for their engine's retryable errors (serialization failures, failovers).
// Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// IsTransient reports whether err is likely to go away on retry: an error
// wrapped with Transient, a network timeout, a refused, reset or aborted
// connection, a broken pipe or a connection closed mid-reply. Missing keys,
// lost locks and context errors are never transient.
func IsTransient(err error) bool {
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
