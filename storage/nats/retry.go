package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/certfleet/certfleet/storage"
)

// retrier retries transient errors: up to 5 tries, backing off from 50 ms
// doubling to 1 s, never past the caller's context.
var retrier = storage.Retry{
	Attempts:   5,
	MinBackoff: 50 * time.Millisecond,
	MaxBackoff: time.Second,
	Transient:  transient,
}

// do runs op under retrier, each attempt bounded by Timeout.
func (s *Storage) do(ctx context.Context, op func(ctx context.Context) error) error {
	return retrier.Do(ctx, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		err := op(actx)
		if err != nil && actx.Err() != nil && ctx.Err() == nil {
			// The attempt's own deadline, not the caller's: worth another try.
			return storage.Transient(fmt.Errorf("no answer from NATS within %s", s.timeout))
		}
		return err
	})
}

// transient reports whether err is worth retrying: the connection is down
// or reconnecting, or JetStream did not answer in time.
func transient(err error) bool {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyExists),
		errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, natsgo.ErrConnectionClosed):
		return false
	case storage.IsTransient(err),
		errors.Is(err, natsgo.ErrTimeout),
		errors.Is(err, natsgo.ErrNoResponders),
		errors.Is(err, natsgo.ErrConnectionReconnecting),
		errors.Is(err, natsgo.ErrDisconnected),
		errors.Is(err, natsgo.ErrReconnectBufExceeded),
		errors.Is(err, jetstream.ErrNoHeartbeat),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	}
	return false
}
