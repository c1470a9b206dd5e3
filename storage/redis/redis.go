package redis

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/certfleet/certfleet/internal/changefeed"
	"github.com/certfleet/certfleet/storage"
)

// Storage is a certmagic.Storage kept in Redis, safe for concurrent use by
// many goroutines and processes. Make one with New and Close it when done.
type Storage struct {
	client   goredis.UniversalClient
	prefix   string // Config.Prefix
	p        string // "{" + prefix + "}", which every Redis key starts with, followed by ':'
	pub      string // the command the scripts announce changes with: PUBLISH, or SPUBLISH in Cluster
	mode     string
	addr     string // for String: the server, or the first sentinel or node
	lockTTL  time.Duration
	timeout  time.Duration
	replicas int // Config.MinReplicas
	logKey   *logEntry
	log      *slog.Logger

	// ctx ends at Close; it owns keepalives, the subscription and stray releases.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	locks  map[string]*heldLock
	watch  *changefeed.Hub // started by the first Watch

	watchMu sync.Mutex // serializes starting the subscription
}

// Interfaces Storage implements.
var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
	_ storage.Fencer             = (*Storage)(nil)
	_ storage.Watcher            = (*Storage)(nil)
)

// New connects to the Redis deployment cfg names (one server, Sentinel or
// Cluster), checks that it answers (within ctx), and returns a Storage that
// owns its client.
//
// go-redis reports some failures through a logger of its own, shared by the
// whole process, which prints to stderr. New replaces it (once, with
// redis.SetLogger) with one that passes those reports at debug level to the
// Logger of every open Storage, so that an outage prints nothing on stderr.
func New(ctx context.Context, cfg Config) (*Storage, error) {
	set, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	logKey := goredisLog.add(cfg.Logger) // before the client logs anything
	client := newClient(set)
	err = retry(ctx, func(ctx context.Context) error { return client.Ping(ctx).Err() })
	if err != nil {
		_ = client.Close()
		goredisLog.remove(logKey)
		return nil, fmt.Errorf("redis: connecting to %s: %w", describe(set), err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Storage{
		client:   client,
		prefix:   set.prefix,
		p:        "{" + set.prefix + "}",
		pub:      "PUBLISH",
		mode:     set.mode,
		addr:     describe(set),
		lockTTL:  set.lockTTL,
		timeout:  set.timeout,
		replicas: set.minReplicas,
		log:      set.logger.With("storage", "redis", "prefix", set.prefix),
		ctx:      sctx,
		cancel:   cancel,
		locks:    make(map[string]*heldLock),
		logKey:   logKey,
	}
	if set.mode == modeCluster {
		s.pub = "SPUBLISH"
	}
	return s, nil
}

// newClient makes the go-redis client for set. go-redis' own retries are
// off: retry repeats only what is safe to repeat (see retry.go).
func newClient(set settings) goredis.UniversalClient {
	switch set.mode {
	case modeSentinel:
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            set.master,
			SentinelAddrs:         set.addrs,
			SentinelPassword:      set.sentinelPassword,
			Username:              set.username,
			Password:              set.password,
			DB:                    set.db,
			TLSConfig:             set.tls,
			MaxRetries:            -1,
			DialerRetries:         1,
			DialTimeout:           set.timeout,
			ReadTimeout:           set.timeout,
			WriteTimeout:          set.timeout,
			ContextTimeoutEnabled: true,
			ClientName:            clientName,
		})
	case modeCluster:
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:                 set.addrs,
			Username:              set.username,
			Password:              set.password,
			TLSConfig:             set.tls,
			MaxRetries:            -1,
			DialerRetries:         1,
			DialTimeout:           set.timeout,
			ReadTimeout:           set.timeout,
			WriteTimeout:          set.timeout,
			ContextTimeoutEnabled: true,
			ClientName:            clientName,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeDisabled,
			},
		})
	}
	return goredis.NewClient(&goredis.Options{
		Addr:                  set.addrs[0],
		Username:              set.username,
		Password:              set.password,
		DB:                    set.db,
		TLSConfig:             set.tls,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           set.timeout,
		ReadTimeout:           set.timeout,
		WriteTimeout:          set.timeout,
		ContextTimeoutEnabled: true,
		ClientName:            clientName,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

// clientName is how the Storage's connections show in CLIENT LIST.
const clientName = "certfleet"

// describe names the deployment of set for errors and String, without
// credentials.
func describe(set settings) string {
	switch set.mode {
	case modeSentinel:
		return fmt.Sprintf("primary %q of sentinels %s", set.master, strings.Join(set.addrs, ","))
	case modeCluster:
		return "cluster " + strings.Join(set.addrs, ",")
	}
	return set.addrs[0]
}

// String describes s (server and prefix) without credentials.
func (s *Storage) String() string {
	return fmt.Sprintf("redis storage %s prefix %q", s.addr, s.prefix)
}

// GoString is String, for %#v.
func (s *Storage) GoString() string { return s.String() }

// Format writes String for every verb.
func (s *Storage) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue is String, for slog.
func (s *Storage) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Close stops lock keepalives and the change subscription, closes the
// channels returned by Watch and closes the Redis client. Locks still held
// are not released: they expire after LockTTL. Close is idempotent.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	h := s.watch
	s.mu.Unlock()

	s.cancel() // ends the subscription
	s.wg.Wait()
	if h != nil {
		h.Close()
	}
	goredisLog.remove(s.logKey)
	return s.client.Close()
}

// cleanKey normalizes a key by trimming slashes; root reports whether
// nothing is left. Keys with an empty component are rejected.
func cleanKey(key string) (k string, root bool, err error) {
	k = strings.Trim(key, "/")
	if strings.Contains(k, "//") {
		return "", false, fmt.Errorf("redis: key %q has an empty path component: remove the doubled '/'", key)
	}
	return k, k == "", nil
}

// fileKey is cleanKey for keys that must name a value.
func fileKey(key string) (string, error) {
	k, root, err := cleanKey(key)
	if err == nil && root {
		err = fmt.Errorf("redis: key %q is empty: name a value such as \"certificates/example.com.crt\"", key)
	}
	return k, err
}

// Every Redis key of a Storage starts with its prefix as a hash tag, "{P}",
// so that in Redis Cluster all of them hash to one slot: every write touches
// its key's value and the directory index of each ancestor up to the root,
// so every script's keys must share a slot, and the only way to give them
// one is to give one to the whole storage. Storages with other prefixes
// land on other slots.
func (s *Storage) valueKey(key string) string { return s.p + ":v:" + key }
func (s *Storage) dirKey(dir string) string   { return s.p + ":d:" + dir }
func (s *Storage) channel() string            { return s.p + ":changes" }

// errNotReplicated is the error of a write that fewer than MinReplicas
// replicas confirmed. It is retried: all writes are safe to repeat.
var errNotReplicated = errors.New("redis: write not confirmed by Config.MinReplicas replicas in time")

// eval runs a script that writes. With MinReplicas set, WAIT follows the
// script on the same connection (a pipeline), and the write counts only
// once that many replicas have it, so that a failover, which promotes a
// replica, cannot lose it.
func (s *Storage) eval(ctx context.Context, sc *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	if s.replicas == 0 {
		return sc.Run(ctx, s.client, keys, args...)
	}
	for loaded := false; ; loaded = true {
		pipe := s.client.Pipeline()
		cmd := sc.EvalSha(ctx, pipe, keys, args...)
		wait := pipe.Do(ctx, "WAIT", s.replicas, (s.timeout / 2).Milliseconds())
		_, _ = pipe.Exec(ctx)
		switch {
		case goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") && !loaded:
			if err := sc.Load(ctx, s.client).Err(); err != nil {
				cmd.SetErr(err)
				return cmd
			}
			continue
		case cmd.Err() != nil:
		case wait.Err() != nil:
			cmd.SetErr(fmt.Errorf("redis: waiting for replicas: %w", wait.Err()))
		case must(wait.Int64()) < int64(s.replicas):
			cmd.SetErr(errNotReplicated)
		}
		return cmd
	}
}

// must returns n, dropping an error already checked.
func must(n int64, _ error) int64 { return n }

// notExist wraps fs.ErrNotExist for key. Only a redis.Nil reply leads here:
// connection failures never look like a missing key.
func notExist(op, key string) error {
	return fmt.Errorf("redis: %s %q: %w", op, key, fs.ErrNotExist)
}

// Store writes value at key, replacing any previous value atomically, and
// announces the key to watchers.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	k, err := fileKey(key)
	if err != nil {
		return err
	}
	// The value is copied into the command buffer before Run returns, so the
	// caller may reuse it.
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	err = retry(ctx, func(ctx context.Context) error {
		return s.eval(ctx, storeScript, []string{s.valueKey(k)}, s.p, k, value, now, s.pub).Err()
	})
	if err != nil {
		return fmt.Errorf("redis: store %q: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist when
// there is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	k, err := fileKey(key)
	if err != nil {
		return nil, err
	}
	var v []byte
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		v, err = s.client.HGet(ctx, s.valueKey(k), "v").Bytes()
		return err
	})
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, notExist("load", key)
	case err != nil:
		return nil, fmt.Errorf("redis: load %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Delete removes the value at key and every key below it (key "a" removes
// "a/b" but not "ab"). A missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k, root, err := cleanKey(key)
	if err != nil {
		return err
	}
	if root {
		return fmt.Errorf("redis: delete %q: refusing to delete the whole storage: name a key or directory", key)
	}
	err = retry(ctx, func(ctx context.Context) error {
		return s.eval(ctx, deleteScript, []string{s.valueKey(k)}, s.p, k, s.pub).Err()
	})
	if err != nil {
		return fmt.Errorf("redis: delete %q: %w", key, err)
	}
	return nil
}

// Exists reports whether key holds a value or is a directory (a prefix of
// keys that hold values). When Redis cannot be asked it answers true, so
// that a caller never mistakes an outage for a missing key; the following
// Load reports the error.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	k, _, err := cleanKey(key)
	if err != nil {
		return false
	}
	var n int64
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		n, err = s.client.Exists(ctx, s.valueKey(k), s.dirKey(k)).Result()
		return err
	})
	if err != nil {
		s.log.Warn("exists: answering true because redis cannot be asked", "key", key, "error", err)
		return true
	}
	return n > 0
}

// List returns the keys directly below path, or every key below it
// (directories included) when recursive is true, in sorted order. It fails
// with fs.ErrNotExist when path is neither a value nor a directory; "" lists
// from the root.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	k, _, err := cleanKey(path)
	if err != nil {
		return nil, err
	}
	rec := "0"
	if recursive {
		rec = "1"
	}
	var keys []string
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		keys, err = listScript.Run(ctx, s.client, []string{s.dirKey(k)}, s.p, k, rec).StringSlice()
		return err
	})
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, notExist("list", path)
	case err != nil:
		return nil, fmt.Errorf("redis: list %q: %w", path, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Stat describes key: a value (IsTerminal, with Size and Modified) or a
// directory (not IsTerminal). It fails with fs.ErrNotExist when key is
// neither.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k, _, err := cleanKey(key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	var reply []any
	err = retry(ctx, func(ctx context.Context) error {
		var err error
		reply, err = statScript.Run(ctx, s.client, []string{s.valueKey(k)}, s.p, k).Slice()
		return err
	})
	switch {
	case errors.Is(err, goredis.Nil):
		return certmagic.KeyInfo{}, notExist("stat", key)
	case err != nil:
		return certmagic.KeyInfo{}, fmt.Errorf("redis: stat %q: %w", key, err)
	}
	info := certmagic.KeyInfo{Key: key}
	if len(reply) == 3 {
		size, _ := reply[1].(int64)
		mod, _ := reply[2].(string)
		ns, err := strconv.ParseInt(mod, 10, 64)
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("redis: stat %q: modified time %q is not a number", key, mod)
		}
		info.IsTerminal = true
		info.Size = size
		info.Modified = time.Unix(0, ns)
	}
	return info, nil
}
