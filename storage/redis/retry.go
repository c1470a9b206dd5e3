package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/certfleet/certfleet/storage"
)

// retrier retries transient errors: up to 5 tries, backing off from 50 ms
// doubling to 1 s, never past the caller's context. go-redis' own retries are
// turned off so that only operations known to be idempotent (all of ours
// are, see scripts.go) are repeated.
var retrier = storage.RetryPolicy{
	MaxAttempts: 5,
	BaseDelay:   50 * time.Millisecond,
	MaxDelay:    time.Second,
	Transient:   transient,
}

// retry runs op under retrier and returns its last error.
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	return retrier.Do(ctx, op)
}

// transient reports whether err is worth retrying: the connection failed or
// timed out (storage.IsTransientIOError), or the server asked to be retried
// (LOADING, TRYAGAIN, BUSY, a failover in progress), or a write did not
// reach MinReplicas replicas in time. A closed client and
// redis.Nil are final.
func transient(err error) bool {
	switch {
	case errors.Is(err, goredis.Nil), errors.Is(err, goredis.ErrClosed):
		return false
	case storage.IsTransientIOError(err),
		errors.Is(err, errNotReplicated),
		errors.Is(err, net.ErrClosed), // go-redis closed the connection under us (a failover)
		errors.Is(err, goredis.ErrPoolTimeout),
		goredis.IsLoadingError(err),
		goredis.IsTryAgainError(err),
		goredis.IsMasterDownError(err),
		goredis.IsReadOnlyError(err),
		goredis.IsClusterDownError(err),
		goredis.IsMaxClientsError(err),
		goredis.HasErrorPrefix(err, "BUSY"):
		return true
	}
	return false
}

// jitter spreads d over [0.75d, 1.25d) so that a fleet does not poll in step.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}
