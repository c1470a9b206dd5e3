// Package storagetest is the conformance suite that every certfleet storage
// backend — built in or written by a user — must pass. It holds a
// certmagic.Storage to the contract certfleet relies on: locks that exclude
// across processes, expire when their holder dies or stalls, tell a stalled
// holder that it lost the lock and never free someone else's; writes that are
// atomic and never lost; prefix operations that cannot over-match; and errors
// that are never mistaken for "not found".
//
// A backend's test calls Run from a top-level test function:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, storagetest.Backend{
//			New: func(t testing.TB, namespace string) certmagic.Storage {
//				s, err := mybackend.New(dsn, namespace, mybackend.LockTTL(2*time.Second))
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { s.Close() })
//				return s
//			},
//			LockTTL: 2 * time.Second,
//		})
//	}
//
// What Run checks (each as a named subtest):
//
//   - Data: values of 0 B, 1 B, 1 MiB and 4 MiB round-trip; Store copies its
//     argument; odd key names (glob, LIKE and percent syntax, case and
//     Unicode variants, 300-character names, names that are prefixes of each
//     other) never collide and List returns them exactly; certmagic's prefix
//     semantics ("t/d" never matches "t/dx" or "t/d2"; a non-recursive List
//     returns direct children, directories included; a recursive one every
//     key below, directories optionally); Stat and Exists of values and
//     directories; a directory exists exactly while a key lies below it;
//     Delete of a prefix removes its subtree only; Load, Stat and List of
//     missing keys fail with fs.ErrNotExist and Delete of one succeeds; no
//     lost writes under concurrency; readers of a 4 MiB value being
//     replaced only ever see a whole value.
//   - Locks: odd lock names never share a lock; Lock on a held name (by
//     another client or the holder's own) returns the context's error by its
//     deadline and never acquires later; fencing tokens strictly grow
//     (storage.Fencer); 3 processes × 100 Lock/Unlock cycles never overlap
//     in the critical section; a lock held for 10 × LockTTL stays held while
//     RenewLockLease with a tiny lease is called (it must not shorten the
//     lease; certmagic.LockLeaseRenewer); a SIGKILLed holder's lock is taken
//     over within LockTTL + 2 s by exactly one of several waiters at a time;
//     a SIGSTOPped holder's lock is taken over, and once resumed its
//     RenewLockLease and Unlock fail with storage.ErrLockLost and leave the
//     new holder's lock in place.
//   - Watch: Store and Delete by another client are reported
//     (storage.Watcher).
//   - Outage (with Backend.Outage): while the backend is cut off, Load, Stat
//     and List fail with errors that are not fs.ErrNotExist and Exists of an
//     existing key does not answer false; once restored, every acknowledged
//     write is there.
//
// The checks of an optional interface skip when the storage lacks it, or when
// its methods return errors.ErrUnsupported. Wrappers should instead have
// exactly the optional interfaces of what they wrap: CheckWrapper checks
// that.
//
// Several checks run in other processes: Run re-executes the test binary,
// selecting the same top-level test, with an environment variable that tells
// Run which role to play there instead of running the suite. Everything the
// test function does before calling Run therefore also happens in those child
// processes; data shared by all processes must be reachable from the
// namespace alone (see SharedDir for backends that keep files).
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// Backend describes a storage under test.
type Backend struct {
	// New returns a client of the storage for namespace. Clients made with the
	// same namespace — in this process or in a child process the suite starts —
	// share keys and locks; different namespaces never see each other.
	//
	// New is also called inside child processes (the suite re-executes the
	// test binary running the same test). Cleanups that New registers run when
	// the client's process is done with it: they should close the client, and
	// must not delete the namespace's data when InChild reports true, because
	// other processes still use it.
	//
	// A namespace matches ^[a-z][a-z0-9_]*$ and is at most 40 bytes long, so
	// it can be used as a SQL identifier, a key prefix or a directory name.
	New func(t testing.TB, namespace string) certmagic.Storage

	// Outage, optional, returns a client whose connection to its server the
	// test can cut (cut: connections refused or dropped) and restore. When nil,
	// the outage check is skipped with a message naming why.
	Outage func(t testing.TB, namespace string) (s certmagic.Storage, cut, restore func())

	// LockTTL is how long a lock outlives a dead or paused holder. Give the
	// backend a short TTL in tests (about 2 s): the keepalive check holds a
	// lock for ten times LockTTL.
	LockTTL time.Duration
}

// Suite-wide limits. Lock waits that must succeed get LockTTL plus grace;
// opTimeout only catches hangs.
const (
	opTimeout  = 30 * time.Second
	lockGrace  = 2 * time.Second
	envChild   = "CERTFLEET_STORAGETEST_CHILD"
	dirPrefix  = "certfleet-storagetest-"
	runIDBytes = 5
)

// Run runs the conformance suite as subtests of t. Call it from a top-level
// TestXxx function (child processes re-run that test). In a child process
// started by the suite, Run plays the role it was started for instead.
func Run(t *testing.T, b Backend) {
	if spec, ok := childSpecFromEnv(); ok {
		runChild(t, b, spec)
		return
	}
	if b.New == nil {
		t.Fatal("storagetest: Backend.New is nil: set it to a function returning a client of the storage under test")
	}
	if b.LockTTL <= 0 {
		t.Fatal("storagetest: Backend.LockTTL is not set: set it to the lock TTL the backend is configured with (e.g. 2s)")
	}
	r := newRun(t, "st", b)

	t.Run("Data", func(t *testing.T) {
		t.Run("RoundTripsValuesOfAllSizes", r.testValueSizes)
		t.Run("StoreCopiesTheValue", r.testStoreCopies)
		t.Run("OddKeyNamesNeverCollide", r.testOddKeyNames)
		t.Run("ListStatExistsDeleteSemantics", r.testTreeSemantics)
		t.Run("MissingKeysAreNotExist", r.testMissingKeys)
		t.Run("NoLostWrites", r.testNoLostWrites)
		t.Run("ReplaceIsAtomic", r.testAtomicReplace)
	})
	t.Run("Locks", func(t *testing.T) {
		t.Run("OddLockNamesNeverCollide", r.testOddLockNames)
		t.Run("LockHonoursContext", r.testLockHonoursContext)
		t.Run("FencingTokensGrow", r.testFencingTokensGrow)
		t.Run("MutualExclusionAcrossProcesses", r.testMutualExclusion)
		// The remaining checks mostly wait for TTLs to pass: run them together.
		t.Run("Expiry", func(t *testing.T) {
			t.Run("HeldLockIsKeptAlive", r.testKeepalive)
			t.Run("KilledHolderIsReplaced", r.testKilledHolder)
			t.Run("PausedHolderLearnsItLostTheLock", r.testPausedHolder)
		})
	})
	t.Run("Watch", r.testWatch)
	t.Run("Outage", r.testOutage)
}

// run is one execution of the suite: a unique id scoping namespaces, and the
// backend under test.
type run struct {
	b     Backend
	id    string
	test  string // name of the test that called Run, for child processes
	kind  string // "st" for Run, "bench" for Bench
	count atomic.Int64
}

func newRun(t testing.TB, kind string, b Backend) *run {
	t.Helper()
	var raw [runIDBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatalf("storagetest: random run id: %v", err)
	}
	r := &run{b: b, id: hex.EncodeToString(raw[:]), test: t.Name(), kind: kind}
	dir := filepath.Join(os.TempDir(), dirPrefix+r.id)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("storagetest: removing shared directory: %v", err)
		}
	})
	return r
}

// namespace returns a fresh namespace for one check, readable in backend logs.
func (r *run) namespace(check string) string {
	return fmt.Sprintf("%s_%s_%d_%s", r.kind, r.id, r.count.Add(1), check)
}

// client returns a new client of namespace ns.
func (r *run) client(t testing.TB, ns string) certmagic.Storage {
	t.Helper()
	s := r.b.New(t, ns)
	if s == nil {
		t.Fatalf("storagetest: Backend.New returned a nil storage")
	}
	return s
}

// SharedDir returns a directory for namespace that every process of the same
// suite run shares, for backends that keep their data in files: the suite's
// child processes find the same directory from the namespace alone. The
// directory is removed when the Run or Bench that made the namespace ends.
// For a namespace that Run or Bench did not make, it returns a fresh
// t.TempDir().
func SharedDir(t testing.TB, namespace string) string {
	t.Helper()
	parts := strings.SplitN(namespace, "_", 3)
	if len(parts) < 3 || len(parts[1]) != 2*runIDBytes {
		return t.TempDir()
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return t.TempDir()
	}
	dir := filepath.Join(os.TempDir(), dirPrefix+parts[1], namespace)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("storagetest: creating shared directory: %v", err)
	}
	return dir
}

// InChild reports whether this process is a child process started by the
// suite. Backends use it to keep a child's cleanups from deleting shared data.
func InChild() bool {
	_, ok := childSpecFromEnv()
	return ok
}

// ctxFor returns a context that ends after d or when the test ends.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// opCtx bounds one ordinary operation, to turn a hang into a failure.
func opCtx(t testing.TB) context.Context {
	return ctxFor(t, opTimeout)
}

// isCtxErr reports whether err is (or wraps) a context error.
func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
