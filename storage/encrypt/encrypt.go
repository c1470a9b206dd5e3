// Package encrypt wraps any certfleet storage so that the values it holds —
// private keys above all — are encrypted with AES-256-GCM before they leave
// the process.
//
//	keys, err := encrypt.KeysFromEnv(nil) // CERTFLEET_STORAGE_KEYS or CERTFLEET_STORAGE_KEYS_FILE
//	if err != nil {
//		return err
//	}
//	s, err := encrypt.New(encrypt.Config{Storage: inner, Keys: keys})
//
// Each value is sealed with the storage key it is stored under as additional
// data, so a value copied or moved to another key fails to decrypt instead of
// being served as, say, another domain's private key. Several keys allow
// rotation: values are written with the first key and read with whichever key
// wrote them (each value names its key by a short identifier). There is no
// default key.
//
// Key names, lists, Stat, locks and change feeds pass through to the wrapped
// storage unchanged, and the wrapper has exactly the optional interfaces
// (TryLock, lease renewal, fencing, change feed, Close) of the storage it
// wraps.
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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/quarantine"
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
var ErrDecrypt error = decryptError{}

// decryptError is ErrDecrypt's type. It also matches the corruption that
// certfleet's packages quarantine (internal/quarantine.ErrCorrupt), so that
// those which must not link this package still tell a value that does not
// decrypt from an outage.
type decryptError struct{}

func (decryptError) Error() string        { return "cannot decrypt stored value" }
func (decryptError) Is(target error) bool { return target == quarantine.ErrCorrupt }

// Config configures New.
type Config struct {
	// Storage is the storage to wrap. Required.
	Storage storage.Storage

	// Keys are the encryption keys, KeySize random bytes each (KeysFromEnv
	// reads them). The first key encrypts new values; every key decrypts
	// the values it encrypted. At least one is required: there is no
	// default key. Formatting Keys (fmt, slog) shows only how many there
	// are and their KeyIDs.
	Keys Keys
}

// String describes c without key material: only how many keys it holds.
func (c Config) String() string {
	return fmt.Sprintf("encrypt.Config{Storage: %s, Keys: %s}", describe(c.Storage), c.Keys)
}

// GoString is String, so that %#v shows no key material either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb, so that no verb shows key material.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without key material.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("storage", describe(c.Storage)), slog.Any("keys", c.Keys))
}

// describe names a storage without formatting it by reflection, which
// could print the credentials of a storage that has no String method.
func describe(s storage.Storage) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// encrypted encrypts values on their way to the storage it wraps. It is
// safe for concurrent use.
type encrypted struct {
	storage.PassThrough          // what it wraps; key names, lists, locks and change feeds pass through
	keys                []sealer // keys[0] seals new values
}

type sealer struct {
	id   [idSize]byte
	aead cipher.AEAD
}

var _ storage.Wrapper = (*encrypted)(nil)

// New returns cfg.Storage wrapped so that values are encrypted before they
// reach it and decrypted when they are loaded.
//
// The result is a storage.Storage rather than a concrete type so that it
// implements each optional storage interface (certmagic.TryLocker,
// certmagic.LockLeaseRenewer, storage.Fencer, storage.Watcher, io.Closer)
// exactly when cfg.Storage does: callers such as certmagic choose how to
// lock by asking a storage what it implements. Those methods pass through,
// and Close closes cfg.Storage. Its Unwrap method returns cfg.Storage.
func New(cfg Config) (storage.Storage, error) {
	if cfg.Storage == nil {
		return nil, errors.New("encrypt: Config.Storage is nil: set it to the storage to wrap")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("encrypt: Config.Keys is empty: generate a key with `openssl rand -base64 32` and set CERTFLEET_STORAGE_KEYS (there is no default key)")
	}
	s := &encrypted{PassThrough: storage.PassThrough{Storage: cfg.Storage}}
	seen := map[[idSize]byte]int{}
	for i, k := range cfg.Keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("encrypt: Config.Keys: key #%d is %d bytes long, want %d (generate one with `openssl rand -base64 32`)", i+1, len(k), KeySize)
		}
		sl, err := newSealer(k)
		if err != nil {
			return nil, fmt.Errorf("encrypt: Config.Keys: key #%d: %w", i+1, err)
		}
		if j, dup := seen[sl.id]; dup {
			return nil, fmt.Errorf("encrypt: Config.Keys: keys #%d and #%d are the same key (or share the key id %x): list each key once", j+1, i+1, sl.id)
		}
		seen[sl.id] = i
		s.keys = append(s.keys, sl)
	}
	return storage.Expose(s), nil
}

// KeyID returns the identifier of key, hex-encoded: what errors and String
// show to tell which key sealed a value. It is safe to log; nothing usable
// about the key can be learnt from it.
func KeyID(key []byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("encrypt: the key is %d bytes long, want %d", len(key), KeySize)
	}
	sl, err := newSealer(key)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sl.id[:]), nil
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

// String describes the storage without any key material.
func (s *encrypted) String() string {
	return fmt.Sprintf("encrypted (key %x) %s", s.keys[0].id, describe(s.Storage))
}

// additionalData binds a sealed value to its header and its storage key.
func additionalData(header []byte, key string) []byte {
	ad := make([]byte, 0, len(header)+1+len(key))
	ad = append(ad, header...)
	ad = append(ad, 0)
	return append(ad, key...)
}

func (s *encrypted) seal(key string, plain []byte) ([]byte, error) {
	k := s.keys[0]
	out := make([]byte, headerSize, headerSize+len(plain)+k.aead.Overhead())
	copy(out, magic)
	copy(out[4:], k.id[:])
	if _, err := rand.Read(out[4+idSize : headerSize]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[4+idSize:headerSize], plain, additionalData(out[:headerSize], key)), nil
}

func (s *encrypted) open(key string, sealed []byte) ([]byte, error) {
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
func (s *encrypted) Store(ctx context.Context, key string, value []byte) error {
	sealed, err := s.seal(key, value)
	if err != nil {
		return fmt.Errorf("store %q: encrypting: %w", key, err)
	}
	return s.Storage.Store(ctx, key, sealed)
}

// Load loads and decrypts the value at key. Errors of the wrapped storage,
// fs.ErrNotExist among them, pass through.
func (s *encrypted) Load(ctx context.Context, key string) ([]byte, error) {
	sealed, err := s.Storage.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.open(key, sealed)
}

// Stat passes through, with Size turned into that of the plaintext (sealing
// adds a fixed number of bytes).
func (s *encrypted) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	info, err := s.Storage.Stat(ctx, key)
	if err == nil && info.IsTerminal && info.Size >= int64(overhead) {
		info.Size -= int64(overhead)
	}
	return info, err
}
