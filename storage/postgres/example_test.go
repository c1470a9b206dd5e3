package postgres_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/certfleet/certfleet/storage/postgres"
)

func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.New(ctx, postgres.Config{
		ConnString: os.Getenv("DATABASE_URL"), // e.g. postgres://certfleet@db.internal/certs?sslmode=verify-full
		LockTTL:    15 * time.Second,
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer s.Close()

	// s is a certmagic.Storage: give it to certmagic (or tlsauto) as its Storage.
	if err := s.Store(ctx, "hello", []byte("world")); err != nil {
		log.Print(err)
	}
}
