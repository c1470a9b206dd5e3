package tlsauto_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
	"github.com/certfleet/certfleet/tlsauto"
)

// ariCheckInterval is the renewal check interval of the ARI tests: ARI is
// refreshed, and the renewal time it selects acted on, at these checks.
const ariCheckInterval = time.Second

// TestRenewsInTheWindowTheCASuggests obtains a certificate on each backend,
// plain and encrypted, then has the CA suggest (ACME Renewal Information)
// renewing it now, months before the lifetime ratio would: the certificate
// is renewed in that window, with an order that names the certificate it
// replaces. Encryption over a storage without TryLock is covered too: the
// wrapper must not claim a TryLock it cannot serve, or certmagic never gets
// the ARI lock.
func TestRenewsInTheWindowTheCASuggests(t *testing.T) {
	key := make([]byte, encrypt.KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	type backend struct {
		name string
		open func(t *testing.T) storage.Storage
	}
	var backends []backend
	for _, b := range backendtest.All(t) {
		backends = append(backends, backend{b.Name, func(t *testing.T) storage.Storage { return openStorage(t, b.URL) }})
	}
	file := backendtest.File(t)
	backends = append(backends,
		backend{"encrypt+file", func(t *testing.T) storage.Storage {
			return encrypted(t, openStorage(t, file.URL), key)
		}},
		backend{"encrypt+storage-without-TryLock", func(t *testing.T) storage.Storage {
			return encrypted(t, struct{ storage.Storage }{openStorage(t, t.TempDir())}, key)
		}},
	)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			w := testacme.Start(t, testacme.Options{ARIRetryAfter: time.Second})
			host := "ari.example.test"
			logs := &syncbuf.Buffer{}
			m, err := tlsauto.New(tlsauto.Config{
				Domains:              []string{host},
				Email:                "ops@example.test",
				CA:                   w.DirectoryURL(),
				CARoots:              w.ACMERoots(),
				DNS:                  w.Provider(),
				Storage:              b.open(t),
				Resolvers:            []string{w.DNSAddr()},
				PropagationTimeout:   -1,
				RenewalCheckInterval: ariCheckInterval,
				Logger:               slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				m.Close()
				if t.Failed() {
					t.Logf("Manager logs:\n%s", logs)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
			old := servedLeaf(t, m, host)
			oldID, err := acme.ARIUniqueIdentifier(old)
			if err != nil {
				t.Fatal(err)
			}

			// ARI is refreshed at the checks (the CA says to ask again every
			// second), and while the CA suggests the default window, two
			// thirds into 90 days, nothing is renewed.
			wait.For(t, time.Minute, "two ARI refreshes after issuance", func() bool {
				return ariFetches(w, oldID) >= 3 // one at issuance
			})
			if orders := w.Orders(); len(orders) != 1 {
				t.Fatalf("%d orders before the CA suggested renewing, want 1", len(orders))
			}

			start := time.Now().Add(2 * time.Second)
			if err := w.SetRenewalWindow(old, start, start.Add(3*time.Second)); err != nil {
				t.Fatal(err)
			}
			wait.For(t, time.Minute, "a renewal order", func() bool { return len(w.Orders()) >= 2 })
			renewal := w.Orders()[1]
			if renewal.Replaces != oldID {
				t.Errorf("renewal order replaces %q, want %q (the renewed certificate)", renewal.Replaces, oldID)
			}
			// certmagic renews at the first check after the time it picked
			// in the window, less one check interval.
			if earliest := start.Add(-ariCheckInterval); renewal.At.Before(earliest) {
				t.Errorf("renewed at %v, before the suggested window (%v, less one check interval)", renewal.At, start)
			}
			wait.For(t, time.Minute, "the renewed certificate served", func() bool {
				return servedLeaf(t, m, host).SerialNumber.Cmp(old.SerialNumber) != 0
			})
			lifetime := old.NotAfter.Sub(old.NotBefore)
			if left := old.NotAfter.Sub(renewal.At); float64(left) < float64(lifetime)*0.9 {
				t.Errorf("renewed with %v of %v left: not earlier than the lifetime ratio would", left, lifetime)
			}
			if n := len(w.Orders()); n != 2 {
				t.Errorf("%d orders, want 2 (one renewal)", n)
			}
		})
	}
}

// openStorage opens the storage at url, closed when the test ends.
func openStorage(t *testing.T, url string) storage.Storage {
	t.Helper()
	s, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	})
	return s
}

func encrypted(t *testing.T, inner storage.Storage, key []byte) storage.Storage {
	t.Helper()
	s, err := encrypt.New(encrypt.Config{Storage: inner, Keys: [][]byte{key}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// servedLeaf returns the certificate m serves for name.
func servedLeaf(t *testing.T, m *tlsauto.Manager, name string) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(fmt.Errorf("served certificate: %w", err))
	}
	return leaf
}

// ariFetches returns how many times the CA was asked for the renewal
// information of the certificate with ARI identifier id.
func ariFetches(w *testacme.World, id string) int {
	return len(slices.DeleteFunc(w.RenewalInfoRequests(), func(r testacme.RenewalInfoRequest) bool { return r.CertID != id }))
}
