// Package file is certfleet's embedded storage backend: a directory on a
// local file system, shared by every process that opens it.
//
//	s, err := file.New(ctx, file.Config{Dir: "/var/lib/certfleet"})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//
// Importing the package registers it with storage.Open for plain paths and
// file:// URLs (file:///var/lib/certfleet?lock_ttl=10s&poll_interval=2s&rescan=true&fix_permissions=true).
//
// Writes go to a temporary file that is synced and renamed over the key, then
// the directory is synced: a reader sees the old value or the new one, never
// a mix, and an acknowledged write survives a crash. Files are created 0600
// and directories 0700, and the directory must be certfleet's alone: New
// refuses one that group or others can write, unless Config.FixPermissions
// lets it tighten the mode to 0700.
//
// A key's components become directory levels: certmagic's keys keep their
// names on disk, while other bytes (upper case included) are percent-encoded
// and very long components are split, so that every key has its own valid
// path even on a case-insensitive file system.
//
// Locks are leases with an owner, a keepalive and a fencing token, built on
// the file system's atomic hard link (which fails if the target exists): each
// holder of a lock creates the next file of a numbered sequence, so of any number of waiters that find
// a lock free or expired only one can take it, and a holder that stalled past
// its lease finds its successor's file and knows it lost the lock. The
// processes sharing a directory must share a clock (one host, or hosts with
// synchronized clocks on a network file system that supports exclusive
// create).
//
// Watch reports changes as they happen through inotify (on Linux), and
// rescans only what inotify cannot see: see Storage.Watch. New removes the
// temporary files that writers killed mid-write left behind.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/storage"
)

const (
	// DefaultLockTTL is the lock TTL when Config.LockTTL is zero.
	DefaultLockTTL = 10 * time.Second
	// DefaultPollInterval is Watch's scan interval when Config.PollInterval
	// is zero.
	DefaultPollInterval = 2 * time.Second
)

// Config configures a file storage. Only Dir is required.
type Config struct {
	// Dir is the directory holding the data; it is created (0700) if
	// missing. Every process sharing certificates opens the same Dir.
	Dir string

	// LockTTL is how long a lock outlives a holder that stopped renewing it
	// (it crashed, or is paused). Holders renew their locks every LockTTL/4.
	// Default DefaultLockTTL.
	LockTTL time.Duration

	// PollInterval is how often Watch rescans Dir for changes that inotify
	// cannot report: on a network file system shared with other hosts, on
	// systems without inotify, or when the inotify watch limit is reached
	// (see Storage.Watch). A rescan reads only the directories whose
	// modification time changed; on large trees the interval stretches to 50
	// times the rescan's duration, up to a minute. Default
	// DefaultPollInterval.
	PollInterval time.Duration

	// Rescan makes Watch rescan every PollInterval even where inotify works
	// and the file system looks local. Set it when other hosts write to Dir
	// through a shared file system that Watch does not recognize as one.
	Rescan bool

	// FixPermissions makes New tighten Dir to mode 0700 when group or others
	// may read or write it. Without it, New refuses a Dir that group or
	// others can write (they could plant a certificate and key of their
	// choosing, or read private keys once they replace a file) and warns
	// through Logger when they can read it. Dir must be certfleet's alone.
	// URL parameter: fix_permissions=true.
	FixPermissions bool

	// Logger receives lock keepalive failures and the warning about a Dir
	// that others can read. Default: discard.
	Logger *slog.Logger
}

// Storage is a certmagic.Storage in a directory. It also implements
// certmagic.TryLocker, certmagic.LockLeaseRenewer, storage.Fencer and
// storage.Watcher. It is safe for concurrent use; Close stops its goroutines.
type Storage struct {
	dir     string
	lockDir string
	ttl     time.Duration
	poll    time.Duration
	rescan  bool
	log     *slog.Logger

	feedMu sync.Mutex // serializes starting the feed
	feed   *feed      // the change feed, started by the first Watch

	mu     sync.Mutex
	held   map[string]*heldLock // lock name → lock this client holds
	closed bool
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

var (
	_ storage.Storage = (*Storage)(nil)
	_ storage.Fencer  = (*Storage)(nil)
	_ storage.Watcher = (*Storage)(nil)
)

// ErrClosed is returned by Lock, TryLock and Watch after Close.
var ErrClosed = errors.New("file storage is closed")

// sweepAge is how old a temporary file must be for New to remove it: older
// than any write in progress, so that New never pulls a file from under a
// writer in another process.
const sweepAge = 15 * time.Minute

// New opens the storage in cfg.Dir, creating the directory if needed, and
// removes the temporary files that writers killed mid-write left there
// (those older than 15 minutes). ctx bounds that sweep.
func New(ctx context.Context, cfg Config) (*Storage, error) {
	if cfg.Dir == "" {
		return nil, errors.New("file storage: Config.Dir is empty: set it to the directory that holds the certificates")
	}
	if cfg.LockTTL < 0 {
		return nil, fmt.Errorf("file storage: Config.LockTTL is negative (%v): set a positive duration or 0 for the default %v", cfg.LockTTL, DefaultLockTTL)
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("file storage: Config.PollInterval is negative (%v): set a positive duration or 0 for the default %v", cfg.PollInterval, DefaultPollInterval)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("file storage: Config.Dir %q: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("file storage: creating Config.Dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkDirMode(dir, cfg.FixPermissions, log); err != nil {
		return nil, err
	}
	s := &Storage{
		dir:     dir,
		lockDir: filepath.Join(dir, lockDirName),
		ttl:     cmpOr(cfg.LockTTL, DefaultLockTTL),
		poll:    cmpOr(cfg.PollInterval, DefaultPollInterval),
		rescan:  cfg.Rescan,
		log:     log,
		held:    map[string]*heldLock{},
		done:    make(chan struct{}),
	}
	if err := s.sweep(ctx, time.Now().Add(-sweepAge)); err != nil {
		return nil, fmt.Errorf("file storage: removing temporary files left by crashed writers in %s: %w", dir, err)
	}
	return s, nil
}

// sweep removes the storage's temporary files (values and lock generations
// being written) last modified before cutoff: a writer that crashed between
// creating one and renaming or linking it into place leaves it behind. Only
// ctx ending or the directory becoming unreadable fails the sweep; a file
// that cannot be removed is logged.
func (s *Storage) sweep(ctx context.Context, cutoff time.Time) error {
	removed := 0
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			if path == s.dir {
				return err
			}
			return nil // removed meanwhile, or unreadable: not ours to judge
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(path); err != nil && !notExist(err) {
			s.log.Warn("could not remove a temporary file left by a crashed writer", "path", path, "error", err)
			return nil
		}
		removed++
		return nil
	})
	if removed > 0 {
		s.log.Info("removed temporary files left by crashed writers", "dir", s.dir, "files", removed)
	}
	return err
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Close stops the storage's keepalives and watches and releases the locks it
// still holds. Reads and writes keep working; Lock, TryLock and Watch fail.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done) // stops the feed, which closes the Watch channels
	held := s.held
	s.held = map[string]*heldLock{}
	s.mu.Unlock()
	var errs []error
	for name, l := range held {
		if err := s.release(l); err != nil && !errors.Is(err, storage.ErrLockLost) {
			errs = append(errs, fmt.Errorf("releasing lock %q: %w", name, err))
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// String describes the storage for logs.
func (s *Storage) String() string { return "file storage " + s.dir }

// Dir returns the storage's absolute directory.
func (s *Storage) Dir() string { return s.dir }

func init() {
	storage.Register("file", openURL)
}

// openURL opens file:///path?lock_ttl=…&poll_interval=…&rescan=…&fix_permissions=… for
// storage.Open.
func openURL(ctx context.Context, u *url.URL) (storage.Storage, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file URL names host %q: use file:///absolute/path or a plain path", u.Host)
	}
	if u.Path == "" {
		return nil, errors.New("file URL has no path: use file:///absolute/path or a plain path")
	}
	cfg := Config{Dir: filepath.FromSlash(u.Path)}
	for k, vs := range u.Query() {
		var dst *time.Duration
		switch k {
		case "rescan", "fix_permissions":
			b, err := strconv.ParseBool(vs[len(vs)-1])
			if err != nil {
				return nil, fmt.Errorf("file URL parameter %s=%q: want true or false", k, vs[len(vs)-1])
			}
			if k == "rescan" {
				cfg.Rescan = b
			} else {
				cfg.FixPermissions = b
			}
			continue
		case "lock_ttl":
			dst = &cfg.LockTTL
		case "poll_interval":
			dst = &cfg.PollInterval
		default:
			return nil, fmt.Errorf("file URL parameter %q is unknown: known parameters are lock_ttl, poll_interval, rescan and fix_permissions", k)
		}
		d, err := time.ParseDuration(vs[len(vs)-1])
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("file URL parameter %s=%q: want a positive duration such as 10s", k, vs[len(vs)-1])
		}
		*dst = d
	}
	return New(ctx, cfg)
}
