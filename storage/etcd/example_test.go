package etcd_test

import (
	"context"
	"fmt"

	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/etcd"
)

// Open etcd storage from a URL, as CERTFLEET_STORAGE gives it: three
// members, the prefix "certfleet/prod", locks that outlive a dead holder by
// at most 15 s.
func Example() {
	ctx := context.Background()
	s, err := storage.Open(ctx, "etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379/certfleet/prod?lock_ttl=15s")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.(interface{ Close() error }).Close()
}
