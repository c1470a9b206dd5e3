package etcd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/certfleet/certfleet/internal/kvbackend"
	"github.com/certfleet/certfleet/storage"
)

// Storage is a certmagic.Storage kept in etcd, safe for concurrent use by
// many goroutines and processes. Make one with New and Close it when done.
type Storage struct {
	client    *clientv3.Client
	prefix    string // Prefix
	vp        string // prefix of value keys: Prefix + "/_v/"
	lp        string // prefix of lock keys: Prefix + "/_l/"
	endpoints []string
	lockTTL   time.Duration
	timeout   time.Duration
	maxReq    int
	log       *slog.Logger
	req       kvbackend.Requests

	// g owns keepalives, the change feed and stray lease revocations.
	g     *kvbackend.Group
	locks *kvbackend.Locks[lockData]

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
var errClosed = errors.New("etcd: storage is closed")

// New connects to the etcd cluster cfg names, checks that it answers (within
// ctx), and returns a Storage that owns its client.
func New(ctx context.Context, cfg Config) (*Storage, error) {
	set, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   set.endpoints,
		Username:    set.username,
		Password:    set.password,
		TLS:         set.tls,
		DialTimeout: set.timeout,
		// Keepalive pings find a dead member while a watch is idle.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: set.timeout,
		// Room for the largest request Store lets through; Store checks the
		// limit itself, with a clearer error than gRPC's.
		MaxCallSendMsgSize: set.maxReq + requestOverhead,
		// The client logs through zap to stderr by default; this library
		// logs through Config.Logger only.
		Logger: zap.NewNop(),
		// gRPC's reconnection backoff grows to two minutes by default: a
		// member back after an outage would stay unused that long.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: set.timeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: connecting to %v: %w", set.endpoints, err)
	}
	s := &Storage{
		client:    client,
		prefix:    set.prefix,
		vp:        set.prefix + "/_v/",
		lp:        set.prefix + "/_l/",
		endpoints: set.endpoints,
		lockTTL:   set.lockTTL,
		timeout:   set.timeout,
		maxReq:    set.maxReq,
		log:       set.logger.With("storage", "etcd", "prefix", set.prefix),
		req:       kvbackend.Requests{Retry: retrier, Timeout: set.timeout, Server: "etcd"},
		g:         kvbackend.NewGroup(),
	}
	s.locks = kvbackend.NewLocks(s.g, s.lockTTL/3, s.refresh, s.log)
	err = s.req.Do(ctx, func(ctx context.Context) error {
		_, err := client.Get(ctx, s.vp, clientv3.WithCountOnly())
		return err
	})
	if err != nil {
		s.g.Close(nil)
		_ = client.Close()
		return nil, fmt.Errorf("etcd: connecting to %v: %w", set.endpoints, err)
	}
	return s, nil
}

// String describes s (endpoints and prefix) without credentials.
func (s *Storage) String() string {
	return fmt.Sprintf("etcd storage %s prefix %q", strings.Join(s.endpoints, ","), s.prefix)
}

// GoString is String, for %#v.
func (s *Storage) GoString() string { return s.String() }

// Format writes String for every verb.
func (s *Storage) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue is String, for slog.
func (s *Storage) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Close stops lock keepalives and the change feed, closes the channels
// returned by Watch, revokes the leases of locks still held (freeing them at
// once) and closes the etcd client. Close is idempotent.
func (s *Storage) Close() error {
	held := s.locks.All()
	closed := s.g.Close(s.feed.Close)
	if !closed {
		return nil
	}
	for _, l := range held {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		_, _ = s.client.Revoke(ctx, l.Data.lease)
		cancel()
	}
	return s.client.Close()
}

func cleanKey(key string) (string, bool, error) { return kvbackend.CleanKey("etcd", key) }
func fileKey(key string) (string, error)        { return kvbackend.FileKey("etcd", key) }

// dirPrefix returns the etcd key prefix of everything below k ("" is the
// root). The trailing '/' keeps "a" from matching "ab/c".
func (s *Storage) dirPrefix(k string) string {
	if k == "" {
		return s.vp
	}
	return s.vp + k + "/"
}

// notExist wraps fs.ErrNotExist for key. Only an answer from etcd that the
// key is absent leads here: failures never look like a missing key.
func notExist(op, key string) error {
	return fmt.Errorf("etcd: %s %q: %w", op, key, fs.ErrNotExist)
}

// A stored value is a header followed by the caller's bytes: a format byte
// and the time of the Store (Unix nanoseconds, big-endian), which etcd does
// not keep and Stat reports.
const (
	valueFormat = 1
	headerLen   = 1 + 8
)

func encodeValue(v []byte, now time.Time) []byte {
	b := make([]byte, headerLen+len(v))
	b[0] = valueFormat
	binary.BigEndian.PutUint64(b[1:headerLen], uint64(now.UnixNano()))
	copy(b[headerLen:], v)
	return b
}

func decodeValue(key string, b []byte) (v []byte, modified time.Time, err error) {
	if len(b) < headerLen || b[0] != valueFormat {
		return nil, time.Time{}, fmt.Errorf("etcd: value at %q was not written by this package (unknown format): delete or rewrite it", key)
	}
	return b[headerLen:], time.Unix(0, int64(binary.BigEndian.Uint64(b[1:headerLen]))), nil
}

// Store writes value at key, replacing any previous value atomically (one
// etcd request), and announces the key to watchers. A value too large for
// one request (Config.MaxRequestBytes) is refused.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	k, err := fileKey(key)
	if err != nil {
		return err
	}
	ek := s.vp + k
	if n := len(ek) + len(value) + requestOverhead; n > s.maxReq {
		return fmt.Errorf("etcd: store %q: the value (%d bytes) does not fit in one etcd request: the limit is %d bytes (Config.MaxRequestBytes, the servers' --max-request-bytes; etcd's default is %d): raise both to store larger values",
			key, len(value), s.maxReq, DefaultMaxRequestBytes)
	}
	v := encodeValue(value, time.Now())
	err = s.req.Do(ctx, func(ctx context.Context) error {
		_, err := s.client.Put(ctx, ek, string(v))
		return err
	})
	if err != nil {
		return fmt.Errorf("etcd: store %q: %w", key, err)
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
	var resp *clientv3.GetResponse
	err = s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = s.client.Get(ctx, s.vp+k)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: load %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notExist("load", key)
	}
	v, _, err := decodeValue(key, resp.Kvs[0].Value)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(v), nil
}

// Delete removes the value at key and every key below it (key "a" removes
// "a/b" but not "ab"), in one transaction. A missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	k, root, err := cleanKey(key)
	if err != nil {
		return err
	}
	if root {
		return fmt.Errorf("etcd: delete %q: refusing to delete the whole storage: name a key or directory", key)
	}
	err = s.req.Do(ctx, func(ctx context.Context) error {
		_, err := s.client.Txn(ctx).Then(
			clientv3.OpDelete(s.vp+k),
			clientv3.OpDelete(s.dirPrefix(k), clientv3.WithPrefix()),
		).Commit()
		return err
	})
	if err != nil {
		return fmt.Errorf("etcd: delete %q: %w", key, err)
	}
	return nil
}

// probe asks, in one consistent read, whether k holds a value (returned
// with its etcd metadata when withValue) and whether any key lies below it.
func (s *Storage) probe(ctx context.Context, k string, withValue bool) (value *clientv3.GetResponse, below bool, err error) {
	var get clientv3.Op
	if withValue {
		get = clientv3.OpGet(s.vp + k)
	} else {
		get = clientv3.OpGet(s.vp+k, clientv3.WithCountOnly())
	}
	var resp *clientv3.TxnResponse
	err = s.req.Do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = s.client.Txn(ctx).Then(
			get,
			clientv3.OpGet(s.dirPrefix(k), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		).Commit()
		return err
	})
	if err != nil {
		return nil, false, err
	}
	v := resp.Responses[0].GetResponseRange()
	d := resp.Responses[1].GetResponseRange()
	return (*clientv3.GetResponse)(v), d.Count > 0, nil
}

// Exists reports whether key holds a value or is a directory (a prefix of
// keys that hold values). When etcd cannot be asked it answers true, so that
// a caller never mistakes an outage for a missing key; the following Load
// reports the error.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	k, root, err := cleanKey(key)
	if err != nil {
		return false
	}
	if root {
		k = ""
	}
	v, below, err := s.probe(ctx, k, false)
	if err != nil {
		s.log.Warn("exists: answering true because etcd cannot be asked", "key", key, "error", err)
		return true
	}
	return (!root && v.Count > 0) || below
}

// Stat describes key: a value (IsTerminal, with Size and Modified) or a
// directory (not IsTerminal). It fails with fs.ErrNotExist when key is
// neither.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	k, root, err := cleanKey(key)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	v, below, err := s.probe(ctx, k, !root)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("etcd: stat %q: %w", key, err)
	}
	if !root && len(v.Kvs) > 0 {
		data, mod, err := decodeValue(key, v.Kvs[0].Value)
		if err != nil {
			return certmagic.KeyInfo{}, err
		}
		return certmagic.KeyInfo{Key: key, IsTerminal: true, Size: int64(len(data)), Modified: mod}, nil
	}
	if !below && !root {
		return certmagic.KeyInfo{}, notExist("stat", key)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// listPage is how many keys one List request reads.
const listPage = 5000

// List returns the keys directly below path, or every key below it
// (directories included) when recursive is true, in sorted order. It fails
// with fs.ErrNotExist when nothing lies below path; "" lists from the root.
// Large listings are read in pages, all at the revision of the first page,
// so that they are consistent.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	k, _, err := cleanKey(path)
	if err != nil {
		return nil, err
	}
	dir := s.dirPrefix(k)
	base := dir[len(s.vp):] // k + "/", or "" at the root
	end := clientv3.GetPrefixRangeEnd(dir)
	from := dir
	var rev int64
	seen := map[string]bool{}
	var keys []string
	add := func(key string) {
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(listPage), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		var resp *clientv3.GetResponse
		err := s.req.Do(ctx, func(ctx context.Context) error {
			var err error
			resp, err = s.client.Get(ctx, from, opts...)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: list %q: %w", path, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			rel := string(kv.Key[len(dir):])
			if !recursive {
				first, _, _ := strings.Cut(rel, "/")
				add(base + first)
				continue
			}
			// Every directory on the way down, then the key itself.
			for i := 0; i < len(rel); i++ {
				if rel[i] == '/' {
					add(base + rel[:i])
				}
			}
			add(base + rel)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if len(keys) == 0 {
		return nil, notExist("list", path)
	}
	slices.Sort(keys)
	return keys, nil
}
