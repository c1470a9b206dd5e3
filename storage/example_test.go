package storage_test

import (
	"context"
	"log"
	"os"

	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/file" // storage/all links every backend
)

// Open picks the backend from a URL, as CERTFLEET_STORAGE does: a directory,
// file://, postgres:// or redis://.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "certfleet-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := storage.Open(context.Background(), dir) // or "postgres://db.internal/certs"
	if err != nil {
		log.Fatal(err)
	}
	defer s.(interface{ Close() error }).Close()
	_, isWatcher := s.(storage.Watcher)
	_, isFencer := s.(storage.Fencer)
	log.Println("change feed:", isWatcher, "fencing:", isFencer)
}
