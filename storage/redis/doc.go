// Package redis is a certmagic.Storage kept in Redis, for a fleet of servers
// that share certificates, with locks they can trust.
//
//	s, err := redis.New(ctx, redis.Config{
//		Addr:   "redis://redis.internal:6379/0",
//		Prefix: "prod",
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Imported for its side effect, the package registers the "redis" and
// "rediss" URL schemes with storage.Open:
//
//	import _ "github.com/certfleet/certfleet/storage/redis"
//
//	s, err := storage.Open(ctx, "redis://redis.internal:6379/0?prefix=prod&lock_ttl=15s")
//
// There the password comes from the URL or, when the URL has none, from
// CERTFLEET_REDIS_PASSWORD (or a file named by CERTFLEET_REDIS_PASSWORD_FILE).
//
// What it guarantees:
//
//   - Every write and delete is one Lua script: a value and the directory
//     index that List and Stat use change together, and the key is announced
//     on a pub/sub channel in the same step. List never scans Redis with
//     glob patterns, so "a" never matches "ab/c", and Delete("a") removes
//     the subtree "a/…" and nothing else.
//   - Locks are owner-checked: Lock stores a random token with SET NX PX and
//     takes a fencing number that never goes backwards (a counter floored by
//     the server's clock, see FencingToken); a keepalive
//     refreshes the lock every third of LockTTL while it is held, and
//     refresh and release act only while the token still holds the lock. A
//     holder that stalled past LockTTL learns from Unlock, with an error
//     wrapping storage.ErrLockLost, that it lost the lock; it never frees the
//     new holder's.
//   - Only a missing key reads as fs.ErrNotExist. Connection failures and
//     timeouts are errors, retried a few times with backoff within the
//     caller's context (all operations are safe to repeat), and Exists
//     answers true rather than false when Redis cannot be asked.
//   - Watch reports every change made by any client with the same Prefix.
//
// It needs a single Redis server (a primary, if it has replicas): Redis
// Cluster is not supported, because the scripts touch keys they compute.
// Tested with Redis 7.0.
package redis
