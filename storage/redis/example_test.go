package redis_test

import (
	"context"
	"log"
	"time"

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

// Through Redis Sentinel: the client asks the sentinels where the primary
// "certs" is and follows failovers; every write waits until one replica has
// it, so that a failover loses none.
func ExampleNew_sentinel() {
	ctx := context.Background()
	s, err := redis.New(ctx, redis.Config{
		Addr:        "s1.internal:26379,s2.internal:26379,s3.internal:26379",
		MasterName:  "certs",
		MinReplicas: 1,
		Prefix:      "prod",
		LockTTL:     30 * time.Second, // outlasts the write stall of a failover
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer s.Close()
}

// On Redis Cluster: all of one storage's keys share a hash slot (the
// prefix is their hash tag), and the change feed is sharded pub/sub.
func ExampleNew_cluster() {
	ctx := context.Background()
	s, err := redis.New(ctx, redis.Config{
		Addr:    "c1.internal:7000,c2.internal:7000,c3.internal:7000",
		Cluster: true,
		Prefix:  "prod",
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer s.Close()
}
