package etcd

import (
	"errors"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certfleet/certfleet/storage"
)

// retrier retries transient errors: up to 5 tries, backing off from 50 ms
// doubling to 1 s, never past the caller's context. Every request this
// package repeats is safe to repeat (see Lock and Unlock for the two that
// need care). Each attempt is bounded by Config.Timeout (Storage.req).
var retrier = storage.RetryPolicy{
	MaxAttempts: 5,
	BaseDelay:   50 * time.Millisecond,
	MaxDelay:    time.Second,
	Transient:   transient,
}

// transient reports whether err is worth retrying: the connection failed
// (storage.IsTransientIOError, gRPC Unavailable), the cluster was between leaders
// or overloaded, or a member timed out waiting for the leader. The
// caller's own deadline is never retried (storage.RetryPolicy stops when the
// caller's context ends).
func transient(err error) bool {
	if storage.IsTransientIOError(err) {
		return true
	}
	for _, e := range []error{
		rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrNotCapable,
		rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrTimeoutWaitAppliedIndex, rpctypes.ErrTooManyRequests, rpctypes.ErrGRPCNoLeader,
	} {
		if errors.Is(err, e) || rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(e) {
			return true
		}
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.DeadlineExceeded:
			return true
		case codes.Unknown:
			// A follower that forwards a lease renewal to a leader that just
			// died answers with its own timeout, as code Unknown.
			return strings.Contains(st.Message(), "deadline exceeded")
		}
	}
	return false
}
