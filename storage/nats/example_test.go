package nats_test

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/nats"
)

// Open NATS JetStream KV storage from a URL, as CERTFLEET_STORAGE gives
// it: the bucket certfleet_prod, created on first use.
func Example() {
	ctx := context.Background()
	s, err := storage.Open(ctx, "nats://nats.internal:4222/certfleet_prod?lock_ttl=15s")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.(interface{ Close() error }).Close()
}
