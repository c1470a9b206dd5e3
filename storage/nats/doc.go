// Package nats is a certmagic.Storage kept in a NATS JetStream key-value
// bucket, for fleets that already run NATS.
//
//	s, err := nats.New(ctx, nats.Config{
//		URL:    "nats://nats.internal:4222",
//		Bucket: "certfleet_prod",
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Imported for its side effect, the package registers the "nats" URL scheme
// with storage.Open:
//
//	import _ "github.com/certfleet/certfleet/storage/nats"
//
//	s, err := storage.Open(ctx, "nats://nats.internal:4222/certfleet_prod?lock_ttl=15s")
//
// The URL's path is the bucket (created on first use, one bucket per
// storage); lock_ttl, timeout and replicas set the Config fields of those
// names. A password comes from the URL or, when the URL names a user
// without one, from CERTFLEET_NATS_PASSWORD (or a file named by
// CERTFLEET_NATS_PASSWORD_FILE).
//
// What it guarantees:
//
//   - Keys are encoded reversibly into NATS KV keys (one token per path
//     component, bytes other than letters, digits, '-' and '_' written as
//     "=XX"), so any certmagic key works, and a directory's subject filter
//     matches whole components only: "a" never matches "ab/c", and
//     Delete("a") removes the subtree "a/…" and nothing else.
//   - A Store replaces the key's entry in one write, so a reader sees a
//     whole old or a whole new value. Values larger than the server's
//     message limit (max_payload, 1 MiB by default) are written as chunks
//     first and published by that one write; readers that meet a chunk
//     already removed by a later replacement read again.
//   - Locks work on NATS 2.9, which has no per-key TTL: a lock is created
//     only if absent, and the revision at which it was taken is its fencing
//     token. The entry holds a lease (owner token and TTL) that the holder
//     renews every third of LockTTL with a compare-and-set on the revision.
//     A waiter that sees the same revision for a whole LockTTL on its own
//     clock takes the lock over, again with a compare-and-set, so no two
//     machines' clocks are compared. A holder that stalled past LockTTL
//     learns from RenewLockLease or Unlock, with an error wrapping
//     storage.ErrLockLost, that it lost the lock; its Unlock (conditional
//     on its revision) never frees the new holder's.
//   - Only a missing key reads as fs.ErrNotExist. Timeouts and a lost
//     connection are errors, retried a few times within the caller's
//     context; nothing is buffered while disconnected, so a write that
//     failed is never applied later. Exists answers true rather than false
//     when the server cannot be asked.
//   - Watch reports every change made by any client of the bucket, from
//     the bucket's watcher.
//
// Delete of a directory removes its keys one by one (NATS KV has no
// multi-key transaction). Tested with nats-server 2.9 (JetStream, file
// storage).
package nats
