package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/storage"
)

// retryBackoff spaces the retries of a transient error.
var retryBackoff = backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}

// retry runs op until it succeeds, fails with an error that is not
// transient, ctx ends, the storage closes, or RetryTimeout has passed. Every
// operation it is used for is idempotent. ambiguous reports that some attempt
// failed after its statement may have reached the server.
func (s *Storage) retry(ctx context.Context, op func(ctx context.Context) error) (ambiguous bool, err error) {
	deadline := time.Now().Add(s.retryTimeout)
	for attempt := 1; ; attempt++ {
		err = op(ctx)
		if err == nil {
			return ambiguous, nil
		}
		if !pgconn.SafeToRetry(err) {
			ambiguous = true
		}
		if !transient(err) || ctx.Err() != nil {
			return ambiguous, err
		}
		wait := retryBackoff.Delay(attempt)
		if time.Now().Add(wait).After(deadline) || !s.pause(ctx, wait) {
			return ambiguous, err
		}
	}
}

// pause waits for d, or until ctx ends or the storage closes; it reports
// whether the whole pause passed.
func (s *Storage) pause(ctx context.Context, d time.Duration) bool {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.life, cancel)()
	return backoff.Sleep(ctx, d) == nil
}

// transient reports whether err may go away if the operation is tried again:
// a lost or refused connection (storage.IsTransientIOError), a server shutting down
// or starting, a serialization failure or deadlock.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"40001", // serialization_failure
			"40P01", // deadlock_detected
			"53300": // too_many_connections
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exception
	}
	var connectErr *pgconn.ConnectError
	return pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.As(err, &connectErr) || storage.IsTransientIOError(err)
}
