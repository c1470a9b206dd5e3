package encrypt_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/storage/storagetest"
)

const testTTL = 2 * time.Second

func key(b byte) []byte { return bytes.Repeat([]byte{b}, encrypt.KeySize) }

func newFile(t testing.TB, dir string) *file.Storage {
	t.Helper()
	s, err := file.New(context.Background(), file.Config{Dir: dir, LockTTL: testTTL, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newEncrypted(t testing.TB, inner storage.Storage, keys ...[]byte) storage.Storage {
	t.Helper()
	s, err := encrypt.New(encrypt.Config{Storage: inner, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceOverFile(t *testing.T) {
	storagetest.Run(t, storagetest.Backend{
		New: func(t testing.TB, ns string) certmagic.Storage {
			return newEncrypted(t, newFile(t, storagetest.SharedDir(t, ns)), key(1), key(2))
		},
		LockTTL: testTTL,
	})
}

func TestInnerStorageSeesOnlyCiphertext(t *testing.T) {
	ctx := context.Background()
	inner := newFile(t, t.TempDir())
	s := newEncrypted(t, inner, key(1))
	secret := []byte("-----BEGIN EC PRIVATE KEY----- very secret")
	if err := s.Store(ctx, "certs/a.key", secret); err != nil {
		t.Fatal(err)
	}
	raw, err := inner.Load(ctx, "certs/a.key")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret")) || bytes.Contains(raw, []byte("PRIVATE")) {
		t.Errorf("the wrapped storage holds the plaintext: %q", raw)
	}
	got, err := s.Load(ctx, "certs/a.key")
	if err != nil || !bytes.Equal(got, secret) {
		t.Errorf("Load = %q, %v; want %q", got, err, secret)
	}
	// Two writes of one value differ (fresh nonce each time).
	if err := s.Store(ctx, "certs/b.key", secret); err != nil {
		t.Fatal(err)
	}
	raw2, _ := inner.Load(ctx, "certs/b.key")
	if bytes.Equal(raw[len(raw)-len(secret):], raw2[len(raw2)-len(secret):]) {
		t.Error("two seals of the same value share their ciphertext")
	}
}

func TestLoadRejectsTamperedAndMovedValues(t *testing.T) {
	ctx := context.Background()
	inner := newFile(t, t.TempDir())
	s := newEncrypted(t, inner, key(1))
	if err := s.Store(ctx, "a.example.com/a.example.com.key", []byte("key of a")); err != nil {
		t.Fatal(err)
	}
	sealed, err := inner.Load(ctx, "a.example.com/a.example.com.key")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name  string
		key   string
		value []byte
	}{
		{"moved to another key", "b.example.com/b.example.com.key", sealed},
		{"ciphertext bit flipped", "a.example.com/a.example.com.key", flip(len(sealed) - 20)},
		{"tag bit flipped", "a.example.com/a.example.com.key", flip(len(sealed) - 1)},
		{"nonce bit flipped", "a.example.com/a.example.com.key", flip(10)},
		{"key id changed", "a.example.com/a.example.com.key", flip(5)},
		{"magic changed", "a.example.com/a.example.com.key", flip(0)},
		{"truncated", "a.example.com/a.example.com.key", sealed[:len(sealed)-1]},
		{"plaintext", "a.example.com/a.example.com.key", []byte("key of a")},
		{"empty", "a.example.com/a.example.com.key", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := inner.Store(ctx, tt.key, tt.value); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load(ctx, tt.key)
			if !errors.Is(err, encrypt.ErrDecrypt) {
				t.Fatalf("Load = %q, %v; want an error wrapping ErrDecrypt", got, err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a value that fails to decrypt is reported as missing: %v", err)
			}
		})
	}
}

func TestRotationWritesWithFirstKeyAndReadsWithAny(t *testing.T) {
	ctx := context.Background()
	inner := newFile(t, t.TempDir())
	oldKey, newKey := key(1), key(2)
	before := newEncrypted(t, inner, oldKey)
	if err := before.Store(ctx, "old", []byte("sealed with the old key")); err != nil {
		t.Fatal(err)
	}
	rotated := newEncrypted(t, inner, newKey, oldKey)
	if got, err := rotated.Load(ctx, "old"); err != nil || string(got) != "sealed with the old key" {
		t.Fatalf("Load of a value sealed with the second key = %q, %v", got, err)
	}
	if err := rotated.Store(ctx, "new", []byte("sealed with the new key")); err != nil {
		t.Fatal(err)
	}
	// Only the new key is needed for new values: the old one can be retired.
	onlyNew := newEncrypted(t, inner, newKey)
	if got, err := onlyNew.Load(ctx, "new"); err != nil || string(got) != "sealed with the new key" {
		t.Fatalf("Load with only the new key = %q, %v", got, err)
	}
	_, err := onlyNew.Load(ctx, "old")
	oldID, idErr := encrypt.KeyID(oldKey)
	if idErr != nil {
		t.Fatal(idErr)
	}
	if !errors.Is(err, encrypt.ErrDecrypt) || !strings.Contains(err.Error(), oldID) {
		t.Errorf("Load of a value sealed with a retired key: want ErrDecrypt naming key id %s, got %v", oldID, err)
	}
	if !strings.Contains(before.(fmt.Stringer).String(), oldID) {
		t.Errorf("String %q does not name the writing key's id %s", before, oldID)
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	inner := newFile(t, t.TempDir())
	tests := []struct {
		name string
		keys [][]byte
		want string
	}{
		{"no key", nil, "Config.Keys is empty"},
		{"short key", [][]byte{key(1)[:16]}, "Config.Keys: key #1 is 16 bytes long"},
		{"long second key", [][]byte{key(1), append(key(2), 0)}, "key #2 is 33 bytes long"},
		{"duplicate", [][]byte{key(1), key(2), key(1)}, "keys #1 and #3 are the same key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encrypt.New(encrypt.Config{Storage: inner, Keys: tt.keys})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: want an error containing %q, got %v", tt.want, err)
			}
		})
	}
	if _, err := encrypt.New(encrypt.Config{Keys: [][]byte{key(1)}}); err == nil || !strings.Contains(err.Error(), "Config.Storage is nil") {
		t.Errorf("New without a storage: want an error naming Config.Storage, got %v", err)
	}
}

func TestKeysFromEnv(t *testing.T) {
	k1, k2 := key(0xA1), key(0xB2)
	b1, b2 := base64.StdEncoding.EncodeToString(k1), base64.RawURLEncoding.EncodeToString(k2)
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(b1+"\n"+b2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := "c2VjcmV0LXNlbnRpbmVs" // base64 of "secret-sentinel": 15 bytes
	tests := []struct {
		name    string
		env     map[string]string
		want    [][]byte
		wantErr string
	}{
		{"unset", nil, nil, ""},
		{"two keys", map[string]string{encrypt.EnvKeys: b1 + ", " + b2}, [][]byte{k1, k2}, ""},
		{"from file", map[string]string{encrypt.EnvKeys + "_FILE": keyFile}, [][]byte{k1, k2}, ""},
		{"both set", map[string]string{encrypt.EnvKeys: b1, encrypt.EnvKeys + "_FILE": keyFile}, nil, "both set"},
		{"wrong length", map[string]string{encrypt.EnvKeys: b1 + "," + sentinel}, nil, "key #2 decodes to 15 bytes"},
		{"not base64", map[string]string{encrypt.EnvKeys: "!!" + sentinel}, nil, "key #1 is not valid base64"},
		{"only commas", map[string]string{encrypt.EnvKeys: " , ,"}, nil, "holds no keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encrypt.KeysFromEnv(secretenv.Map(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("KeysFromEnv: want an error containing %q, got %v", tt.wantErr, err)
				}
				if strings.Contains(err.Error(), sentinel) || strings.Contains(err.Error(), b1) {
					t.Errorf("error reveals key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Keys formats redacted: compare and show the bytes.
			if fmt.Sprintf("%x", [][]byte(got)) != fmt.Sprintf("%x", tt.want) {
				t.Errorf("KeysFromEnv = %x, want %x", [][]byte(got), tt.want)
			}
		})
	}
}

func TestKeyMaterialNeverAppearsInOutput(t *testing.T) {
	ctx := context.Background()
	inner := newFile(t, t.TempDir())
	k := key(0x5C)
	s := newEncrypted(t, inner, k)
	if err := inner.Store(ctx, "bad", []byte("CFE1garbage-garbage-garbage-garbage")); err != nil {
		t.Fatal(err)
	}
	_, loadErr := s.Load(ctx, "bad")
	cfg := encrypt.Config{Storage: inner, Keys: [][]byte{k, k}}
	_, otherErr := encrypt.New(cfg)
	outputs := []string{fmt.Sprintf("%v %+v %#v %s", s, s, s, s), fmt.Sprint(loadErr), fmt.Sprint(otherErr)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg))
	}
	for _, out := range outputs {
		for _, enc := range []string{string(k), hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k)[:20], "92 92 92", "5c5c5c"} {
			if strings.Contains(out, enc) {
				t.Errorf("output reveals the key: %q", out)
			}
		}
	}
}

func TestOptionalInterfacesAreExactlyThoseOfTheWrappedStorage(t *testing.T) {
	storagetest.CheckWrapper(t, func(inner storage.Storage) (storage.Storage, error) {
		return encrypt.New(encrypt.Config{Storage: inner, Keys: [][]byte{key(1)}})
	})
}

func ExampleNew() {
	keys, err := encrypt.ParseKeys("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=") // normally KeysFromEnv(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, err := os.MkdirTemp("", "certfleet-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	inner, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inner.Close()
	s, err := encrypt.New(encrypt.Config{Storage: inner, Keys: keys})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	if err := s.Store(ctx, "certificates/example.com.key", []byte("private key")); err != nil {
		fmt.Println(err)
		return
	}
	v, err := s.Load(ctx, "certificates/example.com.key")
	fmt.Printf("%s %v\n", v, err)
	// Output: private key <nil>
}
