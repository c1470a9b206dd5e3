package tlsauto_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/tlsauto"
)

// poisonedSolver records every call; a Manager must never use it.
type poisonedSolver struct{ calls *atomic.Int32 }

func (p poisonedSolver) Present(context.Context, acme.Challenge) error {
	p.calls.Add(1)
	return errors.New("poisoned solver")
}

func (p poisonedSolver) CleanUp(context.Context, acme.Challenge) error {
	p.calls.Add(1)
	return nil
}

// poisonCertmagicGlobals sets every package-level default of certmagic
// that a careless wrapper would inherit to a value that breaks or betrays
// it, and restores them when the test ends. It returns a counter of the
// poisoned hooks' calls and the poisoned storage's directory.
func poisonCertmagicGlobals(t *testing.T, acmeRoots *x509.CertPool) (*atomic.Int32, string, *syncbuf.Buffer) {
	t.Helper()
	savedDefault, savedACME := certmagic.Default, certmagic.DefaultACME
	t.Cleanup(func() { certmagic.Default, certmagic.DefaultACME = savedDefault, savedACME })

	calls := new(atomic.Int32)
	dir := t.TempDir()
	var logs syncbuf.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zap.DebugLevel))

	certmagic.Default.OnEvent = func(context.Context, string, map[string]any) error { calls.Add(1); return nil }
	certmagic.Default.Storage = &certmagic.FileStorage{Path: dir}
	certmagic.Default.Logger = logger
	certmagic.Default.MustStaple = true
	certmagic.Default.RenewalWindowRatio = 0.999
	certmagic.Default.DefaultServerName = "poisoned.example.test"
	certmagic.Default.FallbackServerName = "poisoned.example.test"
	certmagic.Default.KeySource = certmagic.StandardKeyGenerator{KeyType: certmagic.RSA4096}
	certmagic.Default.OnDemand = &certmagic.OnDemandConfig{}

	certmagic.DefaultACME.CA = "https://127.0.0.1:1/poisoned"
	certmagic.DefaultACME.TestCA = "https://127.0.0.1:1/poisoned-staging"
	certmagic.DefaultACME.Email = "poison@poisoned.example.test"
	certmagic.DefaultACME.TrustedRoots = acmeRoots
	certmagic.DefaultACME.Resolver = "127.0.0.1:1"
	certmagic.DefaultACME.DNS01Solver = poisonedSolver{calls}
	certmagic.DefaultACME.CertObtainTimeout = time.Nanosecond
	certmagic.DefaultACME.Logger = logger
	certmagic.DefaultACME.HTTPProxy = func(*http.Request) (*url.URL, error) {
		calls.Add(1)
		return nil, errors.New("poisoned proxy")
	}
	certmagic.DefaultACME.NewAccountFunc = func(context.Context, *certmagic.ACMEIssuer, acme.Account) (acme.Account, error) {
		calls.Add(1)
		return acme.Account{}, errors.New("poisoned account hook")
	}
	certmagic.DefaultACME.ExternalAccount = &acme.EAB{KeyID: "poisoned", MACKey: "cG9pc29uZWQ"}
	certmagic.Default.Issuers = []certmagic.Issuer{certmagic.NewACMEIssuer(&certmagic.Default, certmagic.DefaultACME)}
	return calls, dir, &logs
}

func TestPoisonedCertmagicGlobalsDoNotReachTheManager(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	calls, poisonedDir, poisonedLogs := poisonCertmagicGlobals(t, nil)
	var _ acmez.Solver = poisonedSolver{}

	cfg := testConfig(t, w, "isolated.example.test", "*.isolated.example.test")
	var events atomic.Int32
	cfg.OnEvent = func(tlsauto.Event) { events.Add(1) }
	m := startManager(t, cfg)
	addr := serve(t, m)
	leaf := mustHandshake(t, addr, "isolated.example.test", w.Roots())
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("certificate key is %v: the poisoned KeySource (RSA 4096) leaked in", leaf.PublicKeyAlgorithm)
	}
	mustHandshake(t, addr, "www.isolated.example.test", w.Roots())
	if _, err := handshake(t, addr, "poisoned.example.test", w.Roots()); err == nil {
		t.Error("the poisoned DefaultServerName is served")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("poisoned hooks (OnEvent, DNS01Solver, HTTPProxy, NewAccountFunc) were called %d times", n)
	}
	if events.Load() == 0 {
		t.Error("the Manager's own OnEvent was never called")
	}
	if entries, err := os.ReadDir(poisonedDir); err != nil || len(entries) != 0 {
		t.Errorf("the poisoned storage was written: %d entries, %v", len(entries), err)
	}
	if poisonedLogs.String() != "" {
		t.Errorf("the Manager logged to the poisoned logger:\n%s", poisonedLogs.String())
	}
}

func TestACMETrustIgnoresCertmagicDefaultRoots(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	// A pool that would make the test CA trusted, set by "another library".
	poisonCertmagicGlobals(t, w.ACMERoots())
	cfg := testConfig(t, w, "roots.example.test")
	cfg.CARoots = nil // the system roots, which do not hold the test CA
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = m.Start(ctx)
	if err == nil {
		t.Fatal("Start trusted the test CA through certmagic.DefaultACME.TrustedRoots")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Start failed, but not on the CA's certificate: %v", err)
	}
	if w.Counts().Orders != 0 {
		t.Fatal("an order reached the CA")
	}
}
