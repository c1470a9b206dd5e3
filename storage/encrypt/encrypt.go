// Package encrypt wraps any certfleet storage so that the values it holds —
// private keys above all — are encrypted with AES-256-GCM before they leave
// the process.
//
//	keys, err := encrypt.KeysFromEnv(nil) // CERTFLEET_STORAGE_KEYS or CERTFLEET_STORAGE_KEYS_FILE
//	if err != nil {
//		return err
//	}
//	s, err := encrypt.New(inner, keys...)
//
// Each value is sealed with the storage key it is stored under as additional
// data, so a value copied or moved to another key fails to decrypt instead of
// being served as, say, another domain's private key. Several keys allow
// rotation: values are written with the first key and read with whichever key
// wrote them (each value names its key by a short identifier). There is no
// default key.
//
// Key names, lists, Stat, locks and change feeds pass through to the wrapped
// storage unchanged.
package encrypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage"
)

// KeySize is the length of an encryption key in bytes.
const KeySize = 32

// Sealed value layout: magic, key id, nonce, then ciphertext with tag. The
// whole header is authenticated too.
var magic = []byte("CFE1")

const (
	idSize     = 4
	nonceSize  = 12
	headerSize = 4 + idSize + nonceSize
	overhead   = headerSize + 16 // header and GCM tag
)

// ErrDecrypt is returned (wrapped) by Load for a value that cannot be
// decrypted: it was tampered with, moved from another key, is not sealed by
// this package, or was sealed with a key that is not configured.
var ErrDecrypt = errors.New("cannot decrypt stored value")

// Storage is a certmagic.Storage that encrypts values on their way to the
// storage it wraps. It is safe for concurrent use.
type Storage struct {
	inner certmagic.Storage
	keys  []sealer // keys[0] seals new values
}

type sealer struct {
	id   [idSize]byte
	aead cipher.AEAD
}

var (
	_ storage.Storage            = (*Storage)(nil)
	_ storage.Fencer             = (*Storage)(nil)
	_ storage.Watcher            = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
)

// New wraps inner. Each key is KeySize random bytes; the first key encrypts
// new values, and every key decrypts the values it encrypted. At least one
// key is required.
func New(inner certmagic.Storage, keys ...[]byte) (*Storage, error) {
	if inner == nil {
		return nil, errors.New("encrypt: the storage to wrap is nil")
	}
	if len(keys) == 0 {
		return nil, errors.New("encrypt: no encryption key given: generate one with `openssl rand -base64 32` and set CERTFLEET_STORAGE_KEYS (there is no default key)")
	}
	s := &Storage{inner: inner}
	seen := map[[idSize]byte]int{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("encrypt: key #%d is %d bytes long, want %d (generate one with `openssl rand -base64 32`)", i+1, len(k), KeySize)
		}
		sl, err := newSealer(k)
		if err != nil {
			return nil, fmt.Errorf("encrypt: key #%d: %w", i+1, err)
		}
		if j, dup := seen[sl.id]; dup {
			return nil, fmt.Errorf("encrypt: keys #%d and #%d are the same key (or share the key id %x): list each key once", j+1, i+1, sl.id)
		}
		seen[sl.id] = i
		s.keys = append(s.keys, sl)
	}
	return s, nil
}

func newSealer(key []byte) (sealer, error) {
	// The cipher key and the public key id are derived separately, so that the
	// id says nothing usable about the cipher key.
	encKey, err := hkdf.Key(sha256.New, key, nil, "certfleet storage encryption v1", 32)
	if err != nil {
		return sealer{}, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return sealer{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, err
	}
	idBytes, err := hkdf.Key(sha256.New, key, nil, "certfleet storage key id v1", idSize)
	if err != nil {
		return sealer{}, err
	}
	var sl sealer
	copy(sl.id[:], idBytes)
	sl.aead = aead
	return sl, nil
}

// KeyIDs returns the identifiers of the configured keys, hex-encoded, the
// writing key first. They are safe to log and tell which key sealed a value.
func (s *Storage) KeyIDs() []string {
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = hex.EncodeToString(k.id[:])
	}
	return ids
}

// String describes the storage without any key material.
func (s *Storage) String() string {
	return fmt.Sprintf("encrypted (key %x) %v", s.keys[0].id, s.inner)
}

// Unwrap returns the wrapped storage.
func (s *Storage) Unwrap() certmagic.Storage { return s.inner }

// additionalData binds a sealed value to its header and its storage key.
func additionalData(header []byte, key string) []byte {
	ad := make([]byte, 0, len(header)+1+len(key))
	ad = append(ad, header...)
	ad = append(ad, 0)
	return append(ad, key...)
}

func (s *Storage) seal(key string, plain []byte) ([]byte, error) {
	k := s.keys[0]
	out := make([]byte, headerSize, headerSize+len(plain)+k.aead.Overhead())
	copy(out, magic)
	copy(out[4:], k.id[:])
	if _, err := rand.Read(out[4+idSize : headerSize]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[4+idSize:headerSize], plain, additionalData(out[:headerSize], key)), nil
}

func (s *Storage) open(key string, sealed []byte) ([]byte, error) {
	if len(sealed) < headerSize || !bytes.Equal(sealed[:4], magic) {
		return nil, fmt.Errorf("load %q: %w: the value is not sealed by certfleet's encryption (written without encryption, or corrupt)", key, ErrDecrypt)
	}
	id := sealed[4 : 4+idSize]
	for _, k := range s.keys {
		if !bytes.Equal(k.id[:], id) {
			continue
		}
		plain, err := k.aead.Open(nil, sealed[4+idSize:headerSize], sealed[headerSize:], additionalData(sealed[:headerSize], key))
		if err != nil {
			return nil, fmt.Errorf("load %q: %w: authentication failed: the value was altered, or moved here from another key", key, ErrDecrypt)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("load %q: %w: it was sealed with key id %x, which is not configured: add that key to the key list", key, ErrDecrypt, id)
}

// Store encrypts value and stores it at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	sealed, err := s.seal(key, value)
	if err != nil {
		return fmt.Errorf("store %q: encrypting: %w", key, err)
	}
	return s.inner.Store(ctx, key, sealed)
}

// Load loads and decrypts the value at key. Errors of the wrapped storage,
// fs.ErrNotExist among them, pass through.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	sealed, err := s.inner.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.open(key, sealed)
}

// Delete passes through.
func (s *Storage) Delete(ctx context.Context, key string) error { return s.inner.Delete(ctx, key) }

// Exists passes through.
func (s *Storage) Exists(ctx context.Context, key string) bool { return s.inner.Exists(ctx, key) }

// List passes through.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	return s.inner.List(ctx, path, recursive)
}

// Stat passes through, with Size turned into that of the plaintext (sealing
// adds a fixed number of bytes).
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	info, err := s.inner.Stat(ctx, key)
	if err == nil && info.IsTerminal && info.Size >= int64(overhead) {
		info.Size -= int64(overhead)
	}
	return info, err
}

// Lock passes through.
func (s *Storage) Lock(ctx context.Context, name string) error { return s.inner.Lock(ctx, name) }

// Unlock passes through.
func (s *Storage) Unlock(ctx context.Context, name string) error { return s.inner.Unlock(ctx, name) }

// TryLock passes through, or fails with errors.ErrUnsupported if the wrapped
// storage is not a certmagic.TryLocker.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	if tl, ok := s.inner.(certmagic.TryLocker); ok {
		return tl.TryLock(ctx, name)
	}
	return false, fmt.Errorf("try lock %q: %T: %w", name, s.inner, errors.ErrUnsupported)
}

// RenewLockLease passes through; if the wrapped storage has no lease
// renewal it does nothing, as certmagic does for such storages.
func (s *Storage) RenewLockLease(ctx context.Context, name string, d time.Duration) error {
	if r, ok := s.inner.(certmagic.LockLeaseRenewer); ok {
		return r.RenewLockLease(ctx, name, d)
	}
	return nil
}

// FencingToken passes through, or fails with errors.ErrUnsupported if the
// wrapped storage is not a storage.Fencer.
func (s *Storage) FencingToken(ctx context.Context, name string) (uint64, error) {
	if f, ok := s.inner.(storage.Fencer); ok {
		return f.FencingToken(ctx, name)
	}
	return 0, fmt.Errorf("fencing token %q: %T: %w", name, s.inner, errors.ErrUnsupported)
}

// Watch passes through, or fails with errors.ErrUnsupported if the wrapped
// storage is not a storage.Watcher.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	if w, ok := s.inner.(storage.Watcher); ok {
		return w.Watch(ctx)
	}
	return nil, fmt.Errorf("watch: %T: %w", s.inner, errors.ErrUnsupported)
}

// Close closes the wrapped storage if it has a Close method.
func (s *Storage) Close() error {
	if c, ok := s.inner.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}
