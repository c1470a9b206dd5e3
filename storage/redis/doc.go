// Package redis is a certmagic.Storage kept in Redis — one server, Redis
// Sentinel or Redis Cluster — for a fleet of servers that share
// certificates, with locks they can trust.
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
// Imported for its side effect, the package registers these URL schemes
// with storage.Open:
//
//	redis://[user[:password]@]host[:port][/db][?params]                  one server (or a primary)
//	redis+sentinel://[user[:password]@]host[:port],host[:port]/mastername[/db][?params]
//	redis+cluster://[user[:password]@]host[:port],host[:port][?params]
//
// and their TLS forms rediss://, rediss+sentinel://, rediss+cluster://. A
// sentinel's port defaults to 26379, a server's to 6379. The user and
// password are those of the Redis servers; params are prefix, lock_ttl,
// timeout and min_replicas (see Config). For example:
//
//	import _ "github.com/certfleet/certfleet/storage/redis"
//
//	s, err := storage.Open(ctx, "redis+sentinel://s1:26379,s2:26379,s3:26379/certs?prefix=prod&min_replicas=1")
//
// There the password comes from the URL or, when the URL has none, from
// CERTFLEET_REDIS_PASSWORD (or a file named by CERTFLEET_REDIS_PASSWORD_FILE);
// the sentinels' own password, if they need one, from
// CERTFLEET_REDIS_SENTINEL_PASSWORD (or _FILE). IPv6 addresses in a list of
// several hosts do not fit a URL: use Config.Addr with MasterName or Cluster.
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
//   - go-redis' own reports (it logs through a process-wide logger to stderr)
//     go to Config.Logger at debug level instead, from the first New on.
//
// # Sentinel
//
// The client asks the sentinels where the primary is and follows failovers.
// Redis replicates asynchronously, so a failover can promote a replica that
// lacks the last acknowledged writes — including a lock just taken or
// extended, which could then be taken a second time. Set MinReplicas
// (min_replicas=1) and every write waits (WAIT) until that many replicas
// have it; a write that the old primary accepted after the promotion is
// then not acknowledged but retried, and lands on the new primary. The
// price: while fewer replicas are connected, writes fail. With one replica,
// that is the time Sentinel takes to turn the old primary into a replica of
// the new one (about ten seconds after a forced failover here), so LockTTL
// must outlast it for locks to survive a failover.
//
// # Cluster
//
// Each script touches a value and the directory index of every ancestor
// up to the root, so all of a script's keys must hash to one slot; since
// every write touches the root's index, that means all of a storage's keys.
// Every Redis key therefore starts with the prefix as a hash tag, "{prefix}:",
// and a storage lives on one shard (storages with different prefixes spread
// over the cluster; certificate data is small). The change feed is sharded
// pub/sub (SPUBLISH and SSUBSCRIBE, Redis 7): the channel "{prefix}:changes"
// hashes to the same slot, so the scripts may publish to it, and the
// messages stay on that shard instead of crossing the cluster bus to every
// node, as plain PUBLISH does. When the slot moves, the server ends the
// subscription; Watch subscribes again where the slot now is and sends ""
// (reload everything). MinReplicas is not supported in Cluster.
//
// Tested with Redis 7.0: one server, a 3-primary cluster and a
// primary, replica and 3 sentinels (with a forced failover).
package redis
