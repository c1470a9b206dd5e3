package nats

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/certfleet/certfleet/internal/kvbackend"
	"github.com/certfleet/certfleet/storage"
)

// Storage is a certmagic.Storage kept in a NATS JetStream key-value bucket,
// safe for concurrent use by many goroutines and processes. Make one with
// New and Close it when done.
type Storage struct {
	nc      *natsgo.Conn
	kv      jetstream.KeyValue
	bucket  string
	server  string // URL without credentials
	lockTTL time.Duration
	timeout time.Duration
	chunk   int // largest value stored in one message
	log     *slog.Logger
	req     kvbackend.Requests

	// g owns keepalives, the change feed and background cleanups.
	g     *kvbackend.Group
	locks *kvbackend.Locks[*lockData]

	feed kvbackend.Feed
}

// Interfaces Storage implements.
var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
	_ storage.Fencer             = (*Storage)(nil)
	_ storage.Watcher            = (*Storage)(nil)
)

// errClosed is returned by operations on a closed Storage.
var errClosed = errors.New("nats: storage is closed")

// messageOverhead is what a KV message adds to a value in the server's
// payload limit accounting, with room to spare.
const messageOverhead = 4 << 10

// New connects to the NATS server cfg names, opens the bucket (creating it
// when absent, within ctx), and returns a Storage that owns its connection.
func New(ctx context.Context, cfg Config) (*Storage, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	opts := []natsgo.Option{
		natsgo.Name("certfleet"),
		natsgo.Timeout(cfg.Timeout),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(100 * time.Millisecond),
		// No buffering while disconnected: a write either reaches the server
		// while its caller waits, or fails; it is never sent later.
		natsgo.ReconnectBufSize(-1),
		natsgo.NoCallbacksAfterClientClose(),
	}
	// nats.go prints asynchronous errors to stderr unless given a handler.
	log := cfg.Logger.With("storage", "nats", "bucket", cfg.Bucket)
	opts = append(opts, natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
		log.Warn("nats connection error", "error", err)
	}))
	if cfg.Username != "" || cfg.Password != "" {
		opts = append(opts, natsgo.UserInfo(cfg.Username, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, natsgo.Token(cfg.Token))
	}
	if cfg.TLSConfig != nil {
		opts = append(opts, natsgo.Secure(cfg.TLSConfig))
	}
	server := redactURL(cfg.URL)
	nc, err := natsgo.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats: connecting to %s: %w", server, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	s := &Storage{
		nc:      nc,
		bucket:  cfg.Bucket,
		server:  server,
		lockTTL: cfg.LockTTL,
		timeout: cfg.Timeout,
		chunk:   int(nc.MaxPayload()) - messageOverhead,
		log:     log,
		req:     kvbackend.Requests{Retry: retrier, Timeout: cfg.Timeout, Server: "NATS"},
		g:       kvbackend.NewGroup(),
	}
	s.locks = kvbackend.NewLocks(s.g, s.lockTTL/3, s.renew, s.log)
	err = s.req.Do(ctx, func(ctx context.Context) error {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:      cfg.Bucket,
				Description: "certfleet storage",
				History:     1,
				Storage:     jetstream.FileStorage,
				Replicas:    cfg.Replicas,
			})
			if errors.Is(err, jetstream.ErrBucketExists) { // created by another client meanwhile
				kv, err = js.KeyValue(ctx, cfg.Bucket)
			}
		}
		s.kv = kv
		return err
	})
	if err != nil {
		s.g.Close(nil)
		nc.Close()
		return nil, fmt.Errorf("nats: opening bucket %q on %s (JetStream must be enabled): %w", cfg.Bucket, server, err)
	}
	if s.chunk < 1<<10 {
		s.g.Close(nil)
		nc.Close()
		return nil, fmt.Errorf("nats: server %s allows messages of only %d bytes: raise its max_payload", server, nc.MaxPayload())
	}
	return s, nil
}

// String describes s (server and bucket) without credentials.
func (s *Storage) String() string {
	return fmt.Sprintf("nats storage %s bucket %q", s.server, s.bucket)
}

// GoString is String, for %#v.
func (s *Storage) GoString() string { return s.String() }

// Format writes String for every verb.
func (s *Storage) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue is String, for slog.
func (s *Storage) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Close stops lock keepalives and the change feed, closes the channels
// returned by Watch and closes the connection. Locks still held are not
// released: they are taken over after LockTTL. Close is idempotent.
func (s *Storage) Close() error {
	s.g.Close(s.feed.Close)
	s.nc.Close()
	return nil
}

func cleanKey(key string) (string, bool, error) { return kvbackend.CleanKey("nats", key) }
func fileKey(key string) (string, error)        { return kvbackend.FileKey("nats", key) }

// notExist wraps fs.ErrNotExist for key. Only the server's answer that the
// key is absent leads here: failures never look like a missing key.
func notExist(op, key string) error {
	return fmt.Errorf("nats: %s %q: %w", op, key, fs.ErrNotExist)
}

// A stored value starts with a format byte: inline (the caller's bytes
// follow) or chunked (size, chunk count and chunk id follow; the bytes are
// in chunk keys), for values larger than the server's message limit.
const (
	formatInline  = 1
	formatChunked = 2
	chunkedLen    = 1 + 8 + 4 + 32
)

type chunked struct {
	size  int64
	count int
	id    string
}

func parseChunked(b []byte) (chunked, bool) {
	if len(b) != chunkedLen || b[0] != formatChunked {
		return chunked{}, false
	}
	return chunked{
		size:  int64(binary.BigEndian.Uint64(b[1:9])),
		count: int(binary.BigEndian.Uint32(b[9:13])),
		id:    string(b[13:]),
	}, true
}

func (c chunked) encode() []byte {
	b := make([]byte, 13, chunkedLen)
	b[0] = formatChunked
	binary.BigEndian.PutUint64(b[1:9], uint64(c.size))
	binary.BigEndian.PutUint32(b[9:13], uint32(c.count))
	return append(b, c.id...)
}

// Store writes value at key, replacing any previous value atomically, and
// announces the key to watchers. A value larger than one message is written
// as chunks first, then published at once by replacing the key's entry.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	k, err := fileKey(key)
	if err != nil {
		return err
	}
	subj := valueSubject(k)
	var entry []byte
	var mine chunked
	if len(value) < s.chunk {
		entry = append([]byte{formatInline}, value...)
	} else {
		if mine, err = s.storeChunks(ctx, value); err != nil {
			return fmt.Errorf("nats: store %q: %w", key, err)
		}
		entry = mine.encode()
	}
	// Replace conditionally on the revision read, so that the chunks of the
	// value replaced are known and removed.
	for {
		var prev jetstream.KeyValueEntry
		err = s.req.Do(ctx, func(ctx context.Context) error {
			var err error
			prev, err = s.kv.Get(ctx, subj)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				prev, err = nil, nil
			}
			return err
		})
		if err == nil {
			err = s.req.Do(ctx, func(ctx context.Context) error {
				var err error
				if prev == nil {
					_, err = s.kv.Create(ctx, subj, entry)
				} else {
					_, err = s.kv.Update(ctx, subj, entry, prev.Revision())
				}
				return err
			})
		}
		switch {
		case isConflict(err):
			if v, gerr := s.kv.Get(ctx, subj); gerr == nil && bytes.Equal(v.Value(), entry) {
				err = nil // an earlier attempt went through; its reply was lost
			} else {
				continue // another writer came first: replace its value
			}
		case err != nil:
			if mine.count > 0 {
				s.deleteChunks(mine)
			}
			return fmt.Errorf("nats: store %q: %w", key, err)
		}
		if prev != nil {
			if old, ok := parseChunked(prev.Value()); ok && old.id != mine.id {
				s.deleteChunks(old)
			}
		}
		return nil
	}
}

// isConflict reports whether err is a failed create-if-absent or
// compare-and-set.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// storeChunks writes value as chunks under a fresh id.
func (s *Storage) storeChunks(ctx context.Context, value []byte) (chunked, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return chunked{}, err
	}
	c := chunked{size: int64(len(value)), id: hex.EncodeToString(raw[:])}
	for off := 0; off < len(value); off += s.chunk {
		part := value[off:min(off+s.chunk, len(value))]
		subj := chunkSubject(c.id, c.count)
		err := s.req.Do(ctx, func(ctx context.Context) error {
			_, err := s.kv.Put(ctx, subj, part)
			return err
		})
		if err != nil {
			c.count++
			s.deleteChunks(c)
			return chunked{}, err
		}
		c.count++
	}
	return c, nil
}

// deleteChunks removes c's chunks in the background; leftovers of a failure
// cost only space.
func (s *Storage) deleteChunks(c chunked) {
	s.g.Go(func(gctx context.Context) {
		for n := range c.count {
			ctx, cancel := context.WithTimeout(gctx, s.timeout)
			err := s.kv.Purge(ctx, chunkSubject(c.id, n))
			cancel()
			if err != nil && gctx.Err() == nil {
				s.log.Warn("could not delete a chunk of a replaced value", "chunk", chunkSubject(c.id, n), "error", err)
			}
		}
	})
}

// get returns the entry of subj, or nil when it is absent.
func (s *Storage) get(ctx context.Context, subj string) (jetstream.KeyValueEntry, error) {
	var e jetstream.KeyValueEntry
	err := s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		e, err = s.kv.Get(ctx, subj)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			e, err = nil, nil
		}
		return err
	})
	return e, err
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist when
// there is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	k, err := fileKey(key)
	if err != nil {
		return nil, err
	}
	subj := valueSubject(k)
	for {
		e, err := s.get(ctx, subj)
		switch {
		case err != nil:
			return nil, fmt.Errorf("nats: load %q: %w", key, err)
		case e == nil:
			return nil, notExist("load", key)
		}
		v := e.Value()
		if len(v) > 0 && v[0] == formatInline {
			return bytes.Clone(v[1:]), nil
		}
		c, ok := parseChunked(v)
		if !ok {
			return nil, fmt.Errorf("nats: load %q: the value was not written by this package (unknown format): delete or rewrite it", key)
		}
		out, complete, err := s.loadChunks(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("nats: load %q: %w", key, err)
		}
		if complete {
			return out, nil
		}
		// Replaced while being read, its chunks deleted: read the new value.
	}
}

// loadChunks reads c's chunks; complete is false when one is gone.
func (s *Storage) loadChunks(ctx context.Context, c chunked) (out []byte, complete bool, err error) {
	out = make([]byte, 0, c.size)
	for n := range c.count {
		e, err := s.get(ctx, chunkSubject(c.id, n))
		if err != nil || e == nil {
			return nil, false, err
		}
		out = append(out, e.Value()...)
	}
	if int64(len(out)) != c.size {
		return nil, false, fmt.Errorf("chunks of %d bytes for a value of %d", len(out), c.size)
	}
	return out, true, nil
}

// subjects returns the KV keys matching filter (live ones, not deleted), at
// most limit of them when limit > 0.
func (s *Storage) subjects(ctx context.Context, filter string, limit int) ([]string, error) {
	var keys []string
	err := s.req.Do(ctx, func(ctx context.Context) error {
		keys = keys[:0]
		w, err := s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
		if err != nil {
			return err
		}
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				switch {
				case !ok:
					return errors.New("listing ended early")
				case e == nil: // every current key has been delivered
					return nil
				}
				keys = append(keys, e.Key())
				if limit > 0 && len(keys) >= limit {
					return nil
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	return keys, err
}

// Delete removes the value at key and every key below it (key "a" removes
// "a/b" but not "ab"). A missing key is not an error. The keys are deleted
// one by one: NATS has no multi-key transaction.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k, root, err := cleanKey(key)
	if err != nil {
		return err
	}
	if root {
		return fmt.Errorf("nats: delete %q: refusing to delete the whole storage: name a key or directory", key)
	}
	below, err := s.subjects(ctx, dirFilter(k), 0)
	if err != nil {
		return fmt.Errorf("nats: delete %q: %w", key, err)
	}
	for _, subj := range append(below, valueSubject(k)) {
		e, err := s.get(ctx, subj)
		if err == nil && e != nil {
			err = s.req.Do(ctx, func(ctx context.Context) error { return s.kv.Delete(ctx, subj) })
			if c, ok := parseChunked(e.Value()); ok && err == nil {
				s.deleteChunks(c)
			}
		}
		if err != nil {
			return fmt.Errorf("nats: delete %q: %w", key, err)
		}
	}
	return nil
}

// Exists reports whether key holds a value or is a directory (a prefix of
// keys that hold values). When NATS cannot be asked it answers true, so
// that a caller never mistakes an outage for a missing key; the following
// Load reports the error.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	k, root, err := cleanKey(key)
	if err != nil {
		return false
	}
	var found bool
	if !root {
		var e jetstream.KeyValueEntry
		e, err = s.get(ctx, valueSubject(k))
		found = e != nil
	}
	if err == nil && !found {
		var below []string
		below, err = s.subjects(ctx, dirFilter(k), 1)
		found = len(below) > 0
	}
	if err != nil {
		s.log.Warn("exists: answering true because NATS cannot be asked", "key", key, "error", err)
		return true
	}
	return found
}

// Stat describes key: a value (IsTerminal, with Size and Modified, the time
// the server stored it) or a directory (not IsTerminal). It fails with
// fs.ErrNotExist when key is neither.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k, root, err := cleanKey(key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if !root {
		e, err := s.get(ctx, valueSubject(k))
		if err != nil {
			return certmagic.KeyInfo{}, fmt.Errorf("nats: stat %q: %w", key, err)
		}
		if e != nil {
			size := int64(len(e.Value()) - 1)
			if c, ok := parseChunked(e.Value()); ok {
				size = c.size
			}
			return certmagic.KeyInfo{Key: key, IsTerminal: true, Size: size, Modified: e.Created()}, nil
		}
	}
	below, err := s.subjects(ctx, dirFilter(k), 1)
	switch {
	case err != nil:
		return certmagic.KeyInfo{}, fmt.Errorf("nats: stat %q: %w", key, err)
	case len(below) == 0 && !root:
		return certmagic.KeyInfo{}, notExist("stat", key)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// List returns the keys directly below path, or every key below it
// (directories included) when recursive is true, in sorted order. It fails
// with fs.ErrNotExist when nothing lies below path; "" lists from the root.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	k, _, err := cleanKey(path)
	if err != nil {
		return nil, err
	}
	subjects, err := s.subjects(ctx, dirFilter(k), 0)
	if err != nil {
		return nil, fmt.Errorf("nats: list %q: %w", path, err)
	}
	seen := map[string]bool{}
	var keys []string
	add := func(key string) {
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	base := ""
	if k != "" {
		base = k + "/"
	}
	for _, subj := range subjects {
		full, err := keyOf(subj)
		if err != nil {
			return nil, fmt.Errorf("nats: list %q: %w", path, err)
		}
		rel := strings.TrimPrefix(full, base)
		if !recursive {
			first, _, _ := strings.Cut(rel, "/")
			add(base + first)
			continue
		}
		for i := 0; i < len(rel); i++ {
			if rel[i] == '/' {
				add(base + rel[:i])
			}
		}
		add(full)
	}
	if len(keys) == 0 {
		return nil, notExist("list", path)
	}
	slices.Sort(keys)
	return keys, nil
}
