// Package all links every built-in storage backend into a program, so that
// storage.Open (and CERTFLEET_STORAGE) accepts any of their URLs:
//
//	import _ "github.com/certfleet/certfleet/storage/all"
//
// Programs that use one backend import only that backend's package instead,
// and do not pay for the others' drivers.
package all

import (
	// Registers etcd:// and etcds:// URLs.
	_ "github.com/certfleet/certfleet/storage/etcd"
	// Registers plain paths and file:// URLs.
	_ "github.com/certfleet/certfleet/storage/file"
	// Registers nats:// URLs.
	_ "github.com/certfleet/certfleet/storage/nats"
	// Registers postgres:// and postgresql:// URLs.
	_ "github.com/certfleet/certfleet/storage/postgres"
	// Registers redis:// and rediss:// URLs.
	_ "github.com/certfleet/certfleet/storage/redis"
)
