package tlsauto_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	_ "github.com/certfleet/certfleet/dnsprovider/rfc2136" // registers "rfc2136"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/bind"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/tlsauto"
)

// bindWorld starts BIND 9 with zones and records, and a test world whose CA
// validates through BIND's recursive side.
func bindWorld(t *testing.T, zones []string, records ...string) (*bind.Server, *testacme.World) {
	t.Helper()
	ns := bind.Start(t, bind.Options{Zones: zones, Records: records})
	return ns, testacme.Start(t, testacme.Options{VAResolver: ns.Addr()})
}

// rfc2136FromEnv builds the provider as a user's environment would, with the
// given secret.
func rfc2136FromEnv(t *testing.T, ns *bind.Server, secret string) dnsprovider.Provider {
	t.Helper()
	p, err := dnsprovider.FromGetenv("rfc2136", secretenv.Map(map[string]string{
		"RFC2136_NAMESERVER":     ns.Addr(),
		"RFC2136_TSIG_KEY":       ns.KeyName(),
		"RFC2136_TSIG_SECRET":    secret,
		"RFC2136_TSIG_ALGORITHM": ns.Algorithm(),
	}))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bindConfig is a Config that obtains names from w over RFC 2136 into ns,
// checking every authoritative nameserver (BIND, on its port).
func bindConfig(t *testing.T, ns *bind.Server, w *testacme.World, p dnsprovider.Provider, names ...string) tlsauto.Config {
	t.Helper()
	return tlsauto.Config{
		Domains:            names,
		Email:              "ops@example.test",
		CA:                 w.DirectoryURL(),
		CARoots:            w.ACMERoots(),
		DNS:                p,
		Storage:            fileStore(t, t.TempDir()),
		Resolvers:          []string{ns.Addr()},
		DNSPort:            ns.Port(),
		PropagationCheck:   dns01.PropagationAll,
		PropagationTimeout: 30 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// noChallengeRecordsLeft waits until BIND's zones hold no TXT record, as
// zone transfers show.
func noChallengeRecordsLeft(t *testing.T, ns *bind.Server) {
	t.Helper()
	var left []string
	var err error
	if !wait.Until(10*time.Second, func() bool {
		left, err = ns.TXTRecords(context.Background())
		return err == nil && len(left) == 0
	}) {
		t.Errorf("challenge records left in BIND: %q (%v)", left, err)
	}
}

func TestRFC2136IssuesApexAndWildcardThroughBIND(t *testing.T) {
	ns, w := bindWorld(t, []string{"example.test"})
	cfg := bindConfig(t, ns, w, rfc2136FromEnv(t, ns, ns.Secret()), "example.test", "*.example.test")
	m := startManager(t, cfg)
	addr := serve(t, m)
	for _, sni := range []string{"example.test", "www.example.test"} {
		mustHandshake(t, addr, sni, w.Roots())
	}
	if c := w.Counts(); c.Certificates < 1 {
		t.Errorf("Pebble issued %d certificates", c.Certificates)
	}
	noChallengeRecordsLeft(t, ns)
	if keys := journal(t, cfg.Storage); len(keys) != 0 {
		t.Errorf("journal entries left: %q", keys)
	}
}

func TestRFC2136FollowsCNAMEIntoValidationZoneOnBIND(t *testing.T) {
	ns, w := bindWorld(t, []string{"example.test", "validation.test"},
		"_acme-challenge.app.example.test. 60 IN CNAME app.validation.test.")
	var audit syncbuf.Buffer
	// Least privilege: the guard refuses any write outside the validation
	// zone, so issuing proves the records went there alone.
	p := dnsprovider.Audit(dnsprovider.Guard(rfc2136FromEnv(t, ns, ns.Secret()), "validation.test"),
		slog.New(slog.NewJSONHandler(&audit, nil)))
	m := startManager(t, bindConfig(t, ns, w, p, "app.example.test", "*.app.example.test"))
	addr := serve(t, m)
	for _, sni := range []string{"app.example.test", "x.app.example.test"} {
		mustHandshake(t, addr, sni, w.Roots())
	}
	appends := 0
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var rec struct{ Op, Zone, Name, Result string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit record %q: %v", line, err)
		}
		if rec.Zone != "validation.test." || rec.Name != "app.validation.test." || rec.Result != "ok" {
			t.Errorf("DNS change outside the delegated target: %s", line)
		}
		if rec.Op == "append" {
			appends++
		}
	}
	if appends == 0 {
		t.Errorf("no append audited:\n%s", audit.String())
	}
	noChallengeRecordsLeft(t, ns)
}

func TestRFC2136WrongTSIGSecretSaysTheKeyWasRefused(t *testing.T) {
	ns, w := bindWorld(t, []string{"example.test"})
	const wrong = "U0VOVElORUwtd3Jvbmctc2VjcmV0LTAxMjM0NTY3ODk=" // base64, not BIND's
	var logs syncbuf.Buffer
	cfg := bindConfig(t, ns, w, rfc2136FromEnv(t, ns, wrong), "example.test")
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Start retries until its context ends; the error keeps the cause.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = m.Start(ctx)
	if err == nil {
		t.Fatal("Start succeeded with a TSIG secret BIND does not know")
	}
	for _, want := range []string{"rfc2136", "refused TSIG key", "BADSIG", "permanent error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	for what, s := range map[string]string{"error": err.Error(), "logs": logs.String()} {
		if strings.Contains(s, wrong) || strings.Contains(s, ns.Secret()) {
			t.Errorf("a TSIG secret appears in the %s", what)
		}
	}
	noChallengeRecordsLeft(t, ns)
}
