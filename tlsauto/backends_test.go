package tlsauto_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/all"
	"github.com/certfleet/certfleet/storage/encrypt"
)

// TestIssuesOnEveryBackend obtains, serves and reloads certificates on each
// storage backend, plain and encrypted.
func TestIssuesOnEveryBackend(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	key := make([]byte, encrypt.KeySize)
	rand.Read(key)
	for _, encrypted := range []bool{false, true} {
		bs := backendtest.All(t)
		if b, ok := backendtest.Etcd(t); ok {
			bs = append(bs, b)
		}
		if b, ok := backendtest.NATS(t); ok {
			bs = append(bs, b)
		}
		for _, b := range bs { // a namespace of its own each time
			name := b.Name
			if encrypted {
				name += "+encrypt"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				store, raw := openBackend(t, b, encrypted, key)
				host := name + ".example.test"
				if encrypted {
					host = "enc-" + b.Name + ".example.test"
				}
				cfg := testConfig(t, w, host)
				cfg.Storage = store
				m := startManager(t, cfg)
				mustHandshake(t, serve(t, m), host, w.Roots())
				m.Close()

				issuer := certmagic.NewACMEIssuer(&certmagic.Config{}, certmagic.ACMEIssuer{CA: w.DirectoryURL()}).IssuerKey()
				stored, err := raw.Load(ctx, certmagic.StorageKeys.SitePrivateKey(issuer, host))
				if err != nil {
					t.Fatalf("private key not in storage: %v", err)
				}
				if got := bytes.Contains(stored, []byte("PRIVATE KEY")); got == encrypted {
					t.Fatalf("private key stored in the clear: %v, want %v", got, !encrypted)
				}

				orders := w.Counts().Orders
				m2 := startManager(t, cfg)
				mustHandshake(t, serve(t, m2), host, w.Roots())
				if got := w.Counts().Orders - orders; got != 0 {
					t.Fatalf("a Manager restarted over the same storage placed %d orders", got)
				}
			})
		}
	}
}

// openBackend opens b's storage for the test, encrypted with key over the
// raw storage if asked; both are closed when the test ends.
func openBackend(t *testing.T, b backendtest.Backend, encrypted bool, key []byte) (store, raw storage.Storage) {
	t.Helper()
	raw, err := storage.Open(context.Background(), b.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := raw.(io.Closer); ok {
			c.Close()
		}
	})
	if !encrypted {
		return raw, raw
	}
	if store, err = encrypt.New(encrypt.Config{Storage: raw, Keys: [][]byte{key}}); err != nil {
		t.Fatal(err)
	}
	return store, raw
}
