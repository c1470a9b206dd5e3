// Package etcd is a certmagic.Storage kept in etcd v3, the coordination
// store many fleets already run, with locks they can trust.
//
//	s, err := etcd.New(ctx, etcd.Config{
//		Endpoints: []string{"http://etcd-1:2379", "http://etcd-2:2379", "http://etcd-3:2379"},
//		Prefix:    "certfleet/prod",
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Imported for its side effect, the package registers the "etcd" and "etcds"
// (TLS) URL schemes with storage.Open:
//
//	import _ "github.com/certfleet/certfleet/storage/etcd"
//
//	s, err := storage.Open(ctx, "etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379/certfleet/prod?lock_ttl=15s")
//
// The URL's path is the Prefix; lock_ttl, timeout and max_request_bytes set
// the Config fields of those names. A password comes from the URL or, when
// the URL names a user without one, from CERTFLEET_ETCD_PASSWORD (or a file
// named by CERTFLEET_ETCD_PASSWORD_FILE).
//
// What it guarantees:
//
//   - Every Store is one etcd put and every Delete one transaction, so a
//     reader sees a whole old or a whole new value. Values live under
//     Prefix + "/_v/" + key; List, Stat and Delete read and remove ranges
//     ending in "key/", so "a" never matches "ab/c", and Delete("a")
//     removes the subtree "a/…" and nothing else.
//   - A value is refused before it is sent when the request would exceed
//     the servers' limit (Config.MaxRequestBytes, etcd's
//     --max-request-bytes, 1.5 MiB unless raised), with an error that says
//     so. Certificates and keys are a few KiB.
//   - A lock is a key created under a transaction only if absent, attached
//     to a lease of LockTTL that a keepalive renews while the lock is held.
//     If the holder dies or is cut off from the cluster, the lease lapses and
//     etcd deletes the key; waiters watch it and take the lock at once.
//     Release deletes the key only if it is still the holder's (same mod
//     revision), so a holder that stalled past LockTTL learns from Unlock,
//     with an error wrapping storage.ErrLockLost, that it lost the lock, and
//     never frees the next holder's. The fencing token is the revision at
//     which the lock was taken.
//   - Only a missing key reads as fs.ErrNotExist. Connection failures,
//     leader elections and timeouts are errors, retried a few times with
//     backoff within the caller's context (each request is bounded by
//     Config.Timeout, so a dead member costs one timeout and the next try
//     goes to another), and Exists answers true rather than false when etcd
//     cannot be asked.
//   - Watch reports every change made by any client with the same Prefix,
//     from one etcd watch that resumes where it stopped after a failure.
//
// Tested with etcd 3.4 (single member, and a three-member cluster that loses
// a member while a lock is held).
package etcd
