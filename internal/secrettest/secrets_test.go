package secrettest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	libdnscf "github.com/libdns/cloudflare"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/azure"
	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/certfleet/certfleet/dnsprovider/googleclouddns"
	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
	"github.com/certfleet/certfleet/dnsprovider/route53"
	"github.com/certfleet/certfleet/internal/secrettest"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
	"github.com/certfleet/certfleet/storage/etcd"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/storage/nats"
	"github.com/certfleet/certfleet/storage/postgres"
	"github.com/certfleet/certfleet/storage/redis"
	"github.com/certfleet/certfleet/tlsauto"
)

// Sentinel secrets: long enough that finding one (or its encodings) in a
// rendering cannot be chance.
const (
	token    = "SENTINELtok3nCloudflare0123456789abcdefXYZ"
	token2   = "SENTINELzoneTok3n0123456789abcdefghijkXYZ"
	awsKey   = "SENTINELawsSecretAccessKey0123456789abcdef"
	awsSess  = "SENTINELawsSessionToken0123456789abcdefghi"
	azSecret = "SENTINEL~azureClientSecret0123456789abcdef"
	pgPass   = "SENTINELpgPassw0rd0123456789"
	redisPw  = "SENTINELredisPassw0rd0123456789"
	macKey   = "SENTINELeabMacKey0123456789abcdefghijklmnopq"
	storeKey = "SENTINEL-storage-key-0123456789!" // KeySize bytes
	tsigRaw  = "SENTINELtsigSecret0123456789abcdef"
)

// tsig is tsigRaw as TSIG secrets are written: base64.
var tsig = base64.StdEncoding.EncodeToString([]byte(tsigRaw))

// must returns v, or panics (failing the test) on an error while setting
// up the values to check.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSecretsNeverPrint formats every type that holds a secret — DNS
// providers and their Configs (also dereferenced), the dnsprovider
// wrappers (Guard, Audit, WithRetry, Observe, Route, Mirror; around
// certfleet's providers and around a raw libdns one),
// storage Configs (postgres, redis, etcd, nats) and storages, encryption keys, EAB, tlsauto.CA and
// tlsauto.Config —
// with every fmt verb, through slog's text and JSON handlers and inside
// errors, and finds no secret in any of them.
func TestSecretsNeverPrint(t *testing.T) {
	ctx := context.Background()
	if len(storeKey) != encrypt.KeySize {
		t.Fatalf("storeKey is %d bytes", len(storeKey))
	}

	cfCfg := cloudflare.Config{APIToken: token, ZoneToken: token2}
	cf := must(cloudflare.New(cfCfg))
	r53Cfg := route53.Config{Region: "us-east-1", AccessKeyID: "AKIASENTINEL0123", SecretAccessKey: awsKey, SessionToken: awsSess}
	r53 := must(route53.New(r53Cfg))
	azCfg := azure.Config{
		TenantID: "00000000-0000-0000-0000-000000000001", ClientID: "00000000-0000-0000-0000-000000000002",
		ClientSecret: azSecret, SubscriptionID: "00000000-0000-0000-0000-000000000003", ResourceGroup: "dns",
	}
	az := must(azure.New(azCfg))
	gfake := apifake.NewGoogleCloudDNS(apifake.NewMemory("example.test"), "sentinel-project")
	t.Cleanup(gfake.Close)
	gCfg := googleclouddns.Config{ServiceAccountJSON: gfake.ServiceAccountJSON()}
	gc := must(googleclouddns.New(gCfg))
	// A line of the PEM private key in the service-account JSON.
	gKeyLine := strings.Split(strings.SplitN(string(gCfg.ServiceAccountJSON), "PRIVATE KEY-----", 2)[1], `\n`)[2]
	tsCfg := rfc2136.Config{Nameserver: "127.0.0.1:53", TSIGKey: "certfleet", TSIGSecret: tsig}
	ts := must(rfc2136.New(tsCfg))
	raw := &libdnscf.Provider{APIToken: token}

	dir := t.TempDir()
	fs := must(file.New(ctx, file.Config{Dir: dir}))
	t.Cleanup(func() { fs.Close() })
	keys := encrypt.Keys{[]byte(storeKey)}
	encCfg := encrypt.Config{Storage: fs, Keys: keys}
	enc := must(encrypt.New(encCfg))

	eab := tlsauto.EAB{KeyID: "kid-1", MACKey: macKey}

	type value struct {
		name    string
		v       any
		secrets []string
	}
	values := []value{
		{"cloudflare.Config", cfCfg, []string{token, token2}},
		{"*cloudflare.Provider", cf, []string{token, token2}},
		{"cloudflare.Provider", *cf.(*cloudflare.Provider), []string{token, token2}},
		{"route53.Config", r53Cfg, []string{awsKey, awsSess}},
		{"*route53.Provider", r53, []string{awsKey, awsSess}},
		{"route53.Provider", *r53.(*route53.Provider), []string{awsKey, awsSess}},
		{"azure.Config", azCfg, []string{azSecret}},
		{"*azure.Provider", az, []string{azSecret}},
		{"azure.Provider", *az.(*azure.Provider), []string{azSecret}},
		{"googleclouddns.Config", gCfg, []string{gKeyLine}},
		{"*googleclouddns.Provider", gc, []string{gKeyLine}},
		{"googleclouddns.Provider", *gc.(*googleclouddns.Provider), []string{gKeyLine}},
		{"rfc2136.Config", tsCfg, []string{tsig, tsigRaw}},
		{"*rfc2136.Provider", ts, []string{tsig, tsigRaw}},
		{"rfc2136.Provider", *ts.(*rfc2136.Provider), []string{tsig, tsigRaw}},
		{"Route", must(dnsprovider.Route(map[string]dnsprovider.Provider{"a.test": cf, "b.test": raw, "c.test": ts})), []string{token, token2, tsig, tsigRaw}},
		{"Mirror", must(dnsprovider.Mirror(r53, raw, az)), []string{token, awsKey, awsSess, azSecret}},
		{"postgres.Config URL", postgres.Config{ConnString: "postgres://u:" + pgPass + "@db.internal/certs?sslpassword=" + pgPass + "x"}, []string{pgPass}},
		{"postgres.Config DSN", postgres.Config{ConnString: "host=db.internal user=u password='" + pgPass + "' dbname=certs"}, []string{pgPass}},
		{"redis.Config URL", redis.Config{Addr: "redis://u:" + redisPw + "@127.0.0.1:6379/0"}, []string{redisPw}},
		{"redis.Config fields", redis.Config{Addr: "127.0.0.1:6379", Password: redisPw, SentinelPassword: redisPw + "s", MasterName: "m"}, []string{redisPw}},
		{"etcd.Config", etcd.Config{Endpoints: []string{"127.0.0.1:2379"}, Username: "u", Password: redisPw}, []string{redisPw}},
		{"nats.Config URL", nats.Config{URL: "nats://u:" + redisPw + "@127.0.0.1:4222"}, []string{redisPw}},
		{"nats.Config fields", nats.Config{URL: "nats://127.0.0.1:4222", Username: "u", Password: redisPw, Token: token}, []string{redisPw, token}},
		{"encrypt.Keys", keys, []string{storeKey}},
		{"encrypt.Config", encCfg, []string{storeKey}},
		{"encrypted storage", enc, []string{storeKey}},
		{"tlsauto.EAB", eab, []string{macKey}},
		{"*tlsauto.EAB", &eab, []string{macKey}},
		{"tlsauto.CA", tlsauto.CA{URL: "https://ca.test/dir", EAB: &eab}, []string{macKey}},
		{"tlsauto.Config", tlsauto.Config{Domains: []string{"example.test"}, DNS: raw, Storage: enc, EAB: &eab,
			CAs: []tlsauto.CA{{URL: "https://ca.test/dir", EAB: &eab}}}, []string{token, macKey, storeKey}},
	}
	inner := map[string]struct {
		p       dnsprovider.Provider
		secrets []string
	}{
		"cloudflare":  {cf, []string{token, token2}},
		"route53":     {r53, []string{awsKey, awsSess}},
		"azure":       {az, []string{azSecret}},
		"gcloud":      {gc, []string{gKeyLine}},
		"rfc2136":     {ts, []string{tsig, tsigRaw}},
		"raw libdns":  {raw, []string{token}},
		"nested":      {dnsprovider.WithRetry(dnsprovider.Guard(raw, "example.test"), dnsprovider.RetryPolicy{}), []string{token}},
		"nil-wrapped": {dnsprovider.Audit(nil, nil), []string{token}},
	}
	for name, in := range inner {
		values = append(values,
			value{"Guard(" + name + ")", dnsprovider.Guard(in.p, "example.test"), in.secrets},
			value{"Audit(" + name + ")", dnsprovider.Audit(in.p, nil), in.secrets},
			value{"WithRetry(" + name + ")", dnsprovider.WithRetry(in.p, dnsprovider.RetryPolicy{}), in.secrets},
			value{"Observe(" + name + ")", dnsprovider.Observe(in.p, func(string, error, time.Duration) {}), in.secrets},
		)
	}
	if cs := os.Getenv("CERTFLEET_TEST_POSTGRES"); strings.HasPrefix(cs, "postgres://") {
		// The test server trusts loopback, so a password in the URL is
		// accepted and ignored: the Storage holds it all the same.
		withPw := strings.Replace(cs, "postgres://postgres@", "postgres://postgres:"+pgPass+"@", 1)
		if withPw != cs {
			pg, err := postgres.New(ctx, postgres.Config{ConnString: withPw})
			if err != nil {
				t.Fatalf("postgres.New: %v", err)
			}
			t.Cleanup(func() { pg.Close() })
			values = append(values, value{"*postgres.Storage", pg, []string{pgPass}},
				value{"encrypted postgres storage", must(encrypt.New(encrypt.Config{Storage: pg, Keys: keys})), []string{pgPass, storeKey}})
		}
	} else {
		t.Log("CERTFLEET_TEST_POSTGRES is not set: a postgres.Storage is not checked, only its Config")
	}
	for _, v := range values {
		secrettest.Check(t, v.name, v.v, v.secrets...)
	}
	// The check itself finds what it looks for.
	leak := struct{ Token string }{token}
	if r := secrettest.Renderings(leak); !strings.Contains(r["fmt %x"], secrettest.Encodings(token)[1]) || !bytes.Contains([]byte(r["slog json"]), []byte(token)) {
		t.Fatal("secrettest does not see a secret in a struct that prints it")
	}
	var _ storage.Storage = enc
}
