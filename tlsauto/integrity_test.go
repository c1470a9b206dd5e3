package tlsauto_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
	"github.com/certfleet/certfleet/storage/storagetest"
	"github.com/certfleet/certfleet/tlsauto"
)

// corruptEnv is what a corruption works on: the storage as the Manager sees
// it (perhaps encrypting) and the raw storage under it, and the keys.
type corruptEnv struct {
	store, raw         storage.Storage
	name, other, email string
	issuer             string
}

func (e corruptEnv) certKey(n string) string { return certmagic.StorageKeys.SiteCert(e.issuer, n) }
func (e corruptEnv) keyKey(n string) string  { return certmagic.StorageKeys.SitePrivateKey(e.issuer, n) }
func (e corruptEnv) metaKey(n string) string { return certmagic.StorageKeys.SiteMeta(e.issuer, n) }

// accountKey returns the key of the ACME account's private key or
// registration (whichever ends in ext), found by listing.
func (e corruptEnv) accountKey(t *testing.T, ext string) string {
	t.Helper()
	keys, err := e.raw.List(context.Background(), "acme", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "/users/"+e.email+"/") && strings.HasSuffix(k, ext) {
			return k
		}
	}
	t.Fatalf("no account %s file among %v", ext, keys)
	return ""
}

func (e corruptEnv) store_(t *testing.T, key string, v []byte) {
	t.Helper()
	if err := e.store.Store(context.Background(), key, v); err != nil {
		t.Fatal(err)
	}
}

func (e corruptEnv) load(t *testing.T, key string) []byte {
	t.Helper()
	v, err := e.store.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// corruptions are the ways stored data goes bad that a Manager must heal.
var corruptions = []struct {
	name      string
	account   bool // the ACME account, not the certificate, is corrupted
	encrypted bool // only over encrypted storage
	corrupt   func(t *testing.T, e corruptEnv)
}{
	{"garbage certificate", false, false, func(t *testing.T, e corruptEnv) {
		e.store_(t, e.certKey(e.name), []byte("not a certificate"))
	}},
	{"garbage key", false, false, func(t *testing.T, e corruptEnv) {
		e.store_(t, e.keyKey(e.name), []byte("-----BEGIN EC PRIVATE KEY-----\ngarbage\n-----END EC PRIVATE KEY-----\n"))
	}},
	{"key of another certificate", false, false, func(t *testing.T, e corruptEnv) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalECPrivateKey(k)
		e.store_(t, e.keyKey(e.name), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	}},
	{"another name's certificate and key", false, false, func(t *testing.T, e corruptEnv) {
		for _, f := range []func(string) string{e.certKey, e.keyKey, e.metaKey} {
			e.store_(t, f(e.name), e.load(t, f(e.other)))
		}
	}},
	{"certificate cut in half", false, false, func(t *testing.T, e corruptEnv) {
		full := e.load(t, e.certKey(e.name))
		second := bytes.Index(full[1:], []byte("-----BEGIN")) + 1
		if second <= 0 {
			t.Fatal("the stored certificate has no chain to cut")
		}
		e.store_(t, e.certKey(e.name), full[:second+(len(full)-second)/2])
	}},
	{"garbage metadata", false, false, func(t *testing.T, e corruptEnv) {
		e.store_(t, e.metaKey(e.name), []byte("{not json"))
	}},
	{"tampered encrypted certificate", false, true, func(t *testing.T, e corruptEnv) {
		ctx := context.Background()
		v, err := e.raw.Load(ctx, e.certKey(e.name))
		if err != nil {
			t.Fatal(err)
		}
		v[len(v)-5] ^= 0x40
		if err := e.raw.Store(ctx, e.certKey(e.name), v); err != nil {
			t.Fatal(err)
		}
	}},
	{"garbage account key", true, false, func(t *testing.T, e corruptEnv) {
		e.store_(t, e.accountKey(t, ".key"), []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	}},
	{"garbage account registration", true, false, func(t *testing.T, e corruptEnv) {
		e.store_(t, e.accountKey(t, ".json"), []byte("{not json"))
	}},
}

// corruptionBackends are the storages the corruption tests run on: file and
// (when configured) PostgreSQL.
func corruptionBackends(t *testing.T) []backendtest.Backend {
	bs := []backendtest.Backend{backendtest.File(t)}
	if b, ok := backendtest.Postgres(t); ok {
		bs = append(bs, b)
	}
	return bs
}

// TestUnusableStoredDataIsQuarantinedAndObtainedAnew corrupts what a
// Manager stored, in each way above, and starts a new Manager over it: it
// must serve a valid certificate after exactly one new order, with the bad
// data kept under certfleet/quarantine/.
func TestUnusableStoredDataIsQuarantinedAndObtainedAnew(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	key := make([]byte, encrypt.KeySize)
	rand.Read(key)
	n := 0
	for _, be := range corruptionBackends(t) {
		for _, encrypted := range []bool{false, true} {
			for _, c := range corruptions {
				if c.encrypted && !encrypted {
					continue
				}
				n++
				label := be.Name
				if encrypted {
					label += "+encrypt"
				}
				t.Run(label+"/"+c.name, func(t *testing.T) {
					ctx := context.Background()
					store, raw := openBackend(t, be, encrypted, key)
					// Every case has its own account, so that the account
					// cases start from a good one of their own.
					e := corruptEnv{store: store, raw: raw, email: fmt.Sprintf("ops%d@example.test", n),
						name: fmt.Sprintf("heal%d.example.test", n), other: fmt.Sprintf("other%d.example.test", n)}
					cfg := testConfig(t, w, e.name, e.other)
					cfg.Email = e.email
					cfg.Storage = store
					cfg.ChainRoots = w.Roots()
					var mu sync.Mutex
					var events []tlsauto.Event
					cfg.OnEvent = func(ev tlsauto.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
					m1 := startManager(t, cfg)
					e.issuer = issuerKey(w)
					m1.Close()

					c.corrupt(t, e)
					if c.account { // a new name makes the account matter
						cfg.Domains = append(cfg.Domains, "fresh"+e.name)
					}
					orders := w.Counts().Orders
					m2 := startManager(t, cfg)
					addr := serve(t, m2)
					for _, n := range cfg.Domains {
						mustHandshake(t, addr, n, w.Roots())
					}
					if got := w.Counts().Orders - orders; got != 1 {
						t.Fatalf("%d new orders after the corruption, want 1", got)
					}
					q, err := raw.List(ctx, "certfleet/quarantine", true)
					if err != nil || !slicesHasSuffix(q, "reason.json") {
						t.Fatalf("no quarantine note: %v, %v", q, err)
					}
					mu.Lock()
					defer mu.Unlock()
					var quarantined bool
					for _, ev := range events {
						quarantined = quarantined || ev.Kind == tlsauto.Quarantined
					}
					if !quarantined {
						t.Fatalf("no Quarantined event among %v", events)
					}
				})
			}
		}
	}
}

func slicesHasSuffix(keys []string, suffix string) bool {
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// issuerKey is the issuer key of w's CA, under which certificates are
// stored.
func issuerKey(w *testacme.World) string {
	return certmagic.NewACMEIssuer(&certmagic.Config{}, certmagic.ACMEIssuer{CA: w.DirectoryURL()}).IssuerKey()
}

// TestRunningManagerNeverSwapsInACertificateThatDoesNotVerify stores
// another name's certificate under a served name's keys while a Manager
// runs: the change feed reloads it, and the good certificate stays served.
func TestRunningManagerNeverSwapsInACertificateThatDoesNotVerify(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	cfg := testConfig(t, w, "kept.example.test", "intruder.example.test")
	store := fileStore(t, t.TempDir())
	cfg.Storage = store
	cfg.ChainRoots = w.Roots()
	var logs syncbuf.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := startManager(t, cfg)
	addr := serve(t, m)
	before := mustHandshake(t, addr, "kept.example.test", w.Roots())
	e := corruptEnv{store: store, issuer: issuerKey(w)}
	for _, f := range []func(string) string{e.certKey, e.keyKey} {
		e.store_(t, f("kept.example.test"), e.load(t, f("intruder.example.test")))
	}
	wait.For(t, time.Minute, "the refused certificate to be logged", func() bool {
		return strings.Contains(logs.String(), "not serving a certificate that does not verify")
	})
	after := mustHandshake(t, addr, "kept.example.test", w.Roots())
	if after.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatal("the served certificate changed to one that does not cover the name")
	}
}

// TestExpiredCertificateWithCADownIsReportedNotServed restarts a Manager
// over an expired certificate while the CA cannot be reached: Start must
// fail naming the name, with a Failed event; the expired certificate is
// served only with ServeExpired.
func TestExpiredCertificateWithCADownIsReportedNotServed(t *testing.T) {
	w := testacme.Start(t, testacme.Options{CertValidity: 3 * time.Second})
	u, err := url.Parse(w.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	ca := storagetest.NewProxy(t, u.Host)
	const name = "stale.example.test"
	cfg := testConfig(t, w, name)
	cfg.CA = "https://" + ca.Addr() + u.Path
	cfg.Storage = fileStore(t, t.TempDir())
	m1 := startManager(t, cfg)
	leaf := mustHandshake(t, serve(t, m1), name, w.Roots())
	m1.Close()
	wait.For(t, 30*time.Second, "the certificate to expire", func() bool { return time.Now().After(leaf.NotAfter) })
	ca.Cut()

	for _, serveExpired := range []bool{false, true} {
		cfg := cfg
		cfg.ServeExpired = serveExpired
		var mu sync.Mutex
		var failed []tlsauto.Event
		cfg.OnEvent = func(e tlsauto.Event) {
			if e.Kind == tlsauto.Failed {
				mu.Lock()
				failed = append(failed, e)
				mu.Unlock()
			}
		}
		m, err := tlsauto.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = m.Start(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("ServeExpired=%v: Start = %v, want an error naming %s", serveExpired, err, name)
		}
		c, gerr := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		switch {
		case serveExpired && (gerr != nil || !c.Leaf.NotAfter.Equal(leaf.NotAfter)):
			t.Errorf("ServeExpired: the expired certificate is not served: %v", gerr)
		case !serveExpired && gerr == nil:
			t.Errorf("an expired certificate is served although ServeExpired is off")
		}
		mu.Lock()
		if len(failed) == 0 {
			t.Errorf("ServeExpired=%v: no Failed event", serveExpired)
		}
		mu.Unlock()
		m.Close()
	}
}
