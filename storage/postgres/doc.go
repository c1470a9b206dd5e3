// Package postgres is a certmagic.Storage kept in PostgreSQL, for a fleet of
// servers that share certificates, keys and locks through one database.
//
//	s, err := postgres.New(ctx, postgres.Config{
//		ConnString: "postgres://certfleet@db.internal:5432/certs?sslmode=verify-full",
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Importing the package also registers it with storage.Open under the schemes
// postgres and postgresql. There, the URL parameters certfleet_schema,
// certfleet_table and certfleet_lock_ttl set Config.Schema, Table and LockTTL:
//
//	postgres://certfleet@db.internal/certs?sslmode=verify-full&certfleet_lock_ttl=30s
//
// # Data
//
// Each key is one row (key text COLLATE "C", value bytea, modified), so a
// Store replaces a value atomically, whatever its size. Directories are not
// stored: they are the prefixes of keys. Prefix operations use the key range
// [prefix+"/", prefix+"0"), which under the bytewise "C" collation is exactly
// the subtree of prefix: "d" never matches "dx/...", and characters such as %
// and _ have no special meaning. New creates the schema, tables and sequence
// if they are missing, so several members can start at once.
//
// # Locks
//
// A lock is a lease row (name, owner, fencing token, expiry) in the lock table.
// A single INSERT ... ON CONFLICT DO UPDATE ... WHERE expired statement takes a
// free or expired lock, so two clients can never both win. Expiry is measured
// on the database clock, never on the members' clocks. While a lock is held,
// a keepalive extends its lease every LockTTL/3; a holder that dies or stalls
// loses the lock LockTTL after its last renewal. Unlock deletes the row only
// if this holder still owns it and reports storage.ErrLockLost otherwise.
// Every acquisition takes a fencing token from a sequence (storage.Fencer).
//
// # Change feed
//
// Every write and delete sends a NOTIFY in the same statement, so a
// notification is delivered exactly when the change commits. Watch
// (storage.Watcher) delivers the keys from one dedicated listening
// connection, which reconnects by itself and then sends "" to say that
// changes may have been missed. Waiters for a lock are woken the same way when
// it is released.
//
// # Failures
//
// Transient errors (connection refused or reset, server shutting down,
// serialization failures) are retried with backoff for up to
// Config.RetryTimeout, so that a blip does not fail one file of certmagic's
// three-file save and make it delete the others. A value is reported as
// missing (fs.ErrNotExist) only when the database answered that it is; an
// outage is always an error, and Exists answers true when it cannot tell.
package postgres
