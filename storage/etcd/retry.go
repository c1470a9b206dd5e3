package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certfleet/certfleet/storage"
)

// retrier retries transient errors: up to 5 tries, backing off from 50 ms
// doubling to 1 s, never past the caller's context. Every request this
// package repeats is safe to repeat (see Lock and Unlock for the two that
// need care).
var retrier = storage.Retry{
	Attempts:   5,
	MinBackoff: 50 * time.Millisecond,
	MaxBackoff: time.Second,
	Transient:  transient,
}

// do runs op under retrier, each attempt bounded by Timeout, so that a
// member that stopped answering costs one Timeout and the next attempt goes
// to another member.
func (s *Storage) do(ctx context.Context, op func(ctx context.Context) error) error {
	return retrier.Do(ctx, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		err := op(actx)
		if err != nil && actx.Err() != nil && ctx.Err() == nil {
			// The attempt's own deadline, not the caller's: worth another try.
			return storage.Transient(fmt.Errorf("no answer from etcd within %s", s.timeout))
		}
		return err
	})
}

// transient reports whether err is worth retrying: the connection failed
// (storage.IsTransient, gRPC Unavailable), or the cluster was between
// leaders or overloaded.
func transient(err error) bool {
	if storage.IsTransient(err) {
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
		case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
			return true
		}
	}
	return false
}
