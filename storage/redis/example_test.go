package redis_test

import (
	"context"
	"log"

	"github.com/certfleet/certfleet/storage/redis"
)

func ExampleNew() {
	ctx := context.Background()
	s, err := redis.New(ctx, redis.Config{
		Addr:   "redis://redis.internal:6379/0",
		Prefix: "prod",
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer s.Close()

	if err := s.Store(ctx, "greeting", []byte("hello")); err != nil {
		log.Print(err)
	}
}
