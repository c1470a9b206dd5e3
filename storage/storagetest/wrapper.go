package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage"
)

// combos_gen.go is written by go generate in package storage.

// CheckWrapper checks a storage wrapper: wrap is its constructor, given the
// storage to wrap. For each of the 32 combinations of the optional storage
// interfaces (certmagic.TryLocker, certmagic.LockLeaseRenewer,
// storage.Fencer, storage.Watcher, io.Closer), it wraps an in-memory storage
// that implements exactly that combination and checks that the wrapper
// implements exactly the same ones, that each of their calls reaches the
// wrapped storage, and that a stored value loads back. A wrapper built with
// storage.Expose passes.
func CheckWrapper(t *testing.T, wrap func(inner storage.Storage) (storage.Storage, error)) {
	t.Helper()
	for mask := range uint(allOptional + 1) {
		t.Run(comboName(mask), func(t *testing.T) {
			for _, err := range checkWrapper(mask, wrap) {
				t.Error(err)
			}
		})
	}
}

// optionalInterfaces names the optional interfaces and tells whether a
// storage implements each, in the order of the mask bits.
var optionalInterfaces = []struct {
	bit  uint
	name string
	has  func(storage.Storage) bool
}{
	{tryLocker, "certmagic.TryLocker", is[certmagic.TryLocker]},
	{leaseRenewer, "certmagic.LockLeaseRenewer", is[certmagic.LockLeaseRenewer]},
	{fencer, "storage.Fencer", is[storage.Fencer]},
	{watcher, "storage.Watcher", is[storage.Watcher]},
	{closer, "io.Closer", is[io.Closer]},
}

func is[T any](s storage.Storage) bool {
	_, ok := s.(T)
	return ok
}

// comboName names a combination of optional interfaces: "none" or the
// interface names joined by "+".
func comboName(mask uint) string {
	var names []string
	for _, o := range optionalInterfaces {
		if mask&o.bit != 0 {
			names = append(names, o.name[strings.LastIndex(o.name, ".")+1:])
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "+")
}

// checkWrapper wraps an inner storage with the optional interfaces in mask
// and returns what is wrong with the result.
func checkWrapper(mask uint, wrap func(storage.Storage) (storage.Storage, error)) []error {
	mem := newMemStorage()
	inner := withOptional(mem, mem, mask)
	w, err := wrap(inner)
	if err != nil {
		return []error{fmt.Errorf("wrapping a storage with %s: %w", comboName(mask), err)}
	}
	if w == nil {
		return []error{fmt.Errorf("wrapping a storage with %s returned nil", comboName(mask))}
	}
	var errs []error
	for _, o := range optionalInterfaces {
		if got, want := o.has(w), mask&o.bit != 0; got != want {
			errs = append(errs, fmt.Errorf("wrapper %T implements %s: %v; the storage it wraps: %v", w, o.name, got, want))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Store(ctx, "k/v", []byte("value")); err != nil {
		errs = append(errs, fmt.Errorf("Store through the wrapper: %w", err))
	} else if v, err := w.Load(ctx, "k/v"); err != nil || !bytes.Equal(v, []byte("value")) {
		errs = append(errs, fmt.Errorf("Load through the wrapper = %q, %v; want %q", v, err, "value"))
	}
	// Each optional method the wrapper has must reach the wrapped storage.
	if tl, ok := w.(certmagic.TryLocker); ok && mask&tryLocker != 0 {
		if ok, err := tl.TryLock(ctx, "l"); !ok || err != nil {
			errs = append(errs, fmt.Errorf("TryLock through the wrapper = %v, %v; want true, nil", ok, err))
		}
	}
	if r, ok := w.(certmagic.LockLeaseRenewer); ok && mask&leaseRenewer != 0 {
		if err := r.RenewLockLease(ctx, "l", time.Minute); err != nil {
			errs = append(errs, fmt.Errorf("RenewLockLease through the wrapper: %w", err))
		}
	}
	if f, ok := w.(storage.Fencer); ok && mask&fencer != 0 {
		if tok, err := f.FencingToken(ctx, "l"); tok != memToken || err != nil {
			errs = append(errs, fmt.Errorf("FencingToken through the wrapper = %d, %v; want %d, nil", tok, err, memToken))
		}
	}
	if wa, ok := w.(storage.Watcher); ok && mask&watcher != 0 {
		if ch, err := wa.Watch(ctx); ch == nil || err != nil {
			errs = append(errs, fmt.Errorf("Watch through the wrapper = %v, %v; want a channel", ch, err))
		}
	}
	if c, ok := w.(io.Closer); ok && mask&closer != 0 {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("Close through the wrapper: %w", err))
		}
	}
	want := slices.DeleteFunc([]string{"TryLock", "RenewLockLease", "FencingToken", "Watch", "Close"}, func(m string) bool {
		return mask&methodBit[m] == 0
	})
	if got := mem.optionalCalls(); !slices.Equal(got, want) {
		errs = append(errs, fmt.Errorf("optional methods that reached the wrapped storage: %v; want %v", got, want))
	}
	return errs
}

var methodBit = map[string]uint{
	"TryLock": tryLocker, "RenewLockLease": leaseRenewer, "FencingToken": fencer, "Watch": watcher, "Close": closer,
}

// memToken is the fencing token memStorage reports.
const memToken = 7

// fullStorage is what memStorage implements: every optional interface.
type fullStorage interface {
	storage.Storage
	certmagic.TryLocker
	certmagic.LockLeaseRenewer
	storage.Fencer
	storage.Watcher
	io.Closer
}

// memStorage is an in-memory storage for CheckWrapper that records the calls
// of optional methods.
type memStorage struct {
	mu     sync.Mutex
	values map[string][]byte
	calls  []string
}

func newMemStorage() *memStorage { return &memStorage{values: map[string][]byte{}} }

func (m *memStorage) record(method string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, method)
}

func (m *memStorage) optionalCalls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

func (m *memStorage) Store(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[key] = bytes.Clone(value)
	return nil
}

func (m *memStorage) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(v), nil
}

func (m *memStorage) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.values, key)
	return nil
}

func (m *memStorage) Exists(_ context.Context, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.values[key]
	return ok
}

func (m *memStorage) List(_ context.Context, prefix string, _ bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.values {
		if strings.HasPrefix(k, prefix+"/") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m *memStorage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[key]
	if !ok {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, Size: int64(len(v)), IsTerminal: true}, nil
}

func (m *memStorage) Lock(context.Context, string) error   { return nil }
func (m *memStorage) Unlock(context.Context, string) error { return nil }

func (m *memStorage) TryLock(context.Context, string) (bool, error) {
	m.record("TryLock")
	return true, nil
}

func (m *memStorage) RenewLockLease(context.Context, string, time.Duration) error {
	m.record("RenewLockLease")
	return nil
}

func (m *memStorage) FencingToken(context.Context, string) (uint64, error) {
	m.record("FencingToken")
	return memToken, nil
}

func (m *memStorage) Watch(ctx context.Context) (<-chan string, error) {
	m.record("Watch")
	ch := make(chan string)
	context.AfterFunc(ctx, func() { close(ch) })
	return ch, nil
}

func (m *memStorage) Close() error {
	m.record("Close")
	return nil
}

// tryLock is certmagic.TryLocker without Unlock, which every Storage has:
// embedding both would make Unlock ambiguous.
type tryLock interface {
	TryLock(ctx context.Context, name string) (bool, error)
}
