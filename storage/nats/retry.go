package nats

import (
	"errors"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/certfleet/certfleet/storage"
)

// retrier retries transient errors: up to 5 tries, backing off from 50 ms
// doubling to 1 s, never past the caller's context; each attempt bounded
// by Config.Timeout (Storage.req).
var retrier = storage.RetryPolicy{
	MaxAttempts: 5,
	BaseDelay:   50 * time.Millisecond,
	MaxDelay:    time.Second,
	Transient:   transient,
}

// transient reports whether err is worth retrying: the connection is down
// or reconnecting, or JetStream did not answer in time.
func transient(err error) bool {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyExists),
		errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, natsgo.ErrConnectionClosed):
		return false
	case storage.IsTransientIOError(err),
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
