package azure_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/azure"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/libdns/libdns"
)

// sentinel is a client secret that must never appear in an error, log or
// formatted value.
const sentinel = "SENTINEL~azureSECRET.0123456789_abcdef"

var creds = apifake.AzureCredentials{
	TenantID:       "72f988bf-86f1-41af-91ab-2d7cd011db47",
	ClientID:       "0c5a4e0e-3a8b-4b1e-9d53-1f6a1b2c3d4e",
	ClientSecret:   sentinel,
	SubscriptionID: "11111111-2222-3333-4444-555555555555",
	ResourceGroup:  "dns-rg",
}

func env(secret string) map[string]string {
	return map[string]string{
		"AZURE_TENANT_ID": creds.TenantID, "AZURE_CLIENT_ID": creds.ClientID, "AZURE_CLIENT_SECRET": secret,
		"AZURE_SUBSCRIPTION_ID": creds.SubscriptionID, "AZURE_RESOURCE_GROUP": creds.ResourceGroup,
	}
}

func config(f *apifake.Azure) azure.Config {
	return azure.Config{
		TenantID: creds.TenantID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
		SubscriptionID: creds.SubscriptionID, ResourceGroup: creds.ResourceGroup, HTTPClient: f.Client(),
	}
}

func fake(t *testing.T, zones ...string) (*apifake.Azure, *apifake.Memory) {
	t.Helper()
	mem := apifake.NewMemory(zones...)
	f := apifake.NewAzure(mem, creds)
	t.Cleanup(f.Close)
	return f, mem
}

func provider(t *testing.T, cfg azure.Config) dnsprovider.Provider {
	t.Helper()
	p, err := azure.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func txt(name, text string) libdns.TXT {
	return libdns.TXT{Name: name, Text: text, TTL: 2 * time.Minute}
}

func texts(t *testing.T, g libdns.RecordGetter, zone, name string) []string {
	t.Helper()
	recs, err := g.GetRecords(context.Background(), zone)
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	var out []string
	for _, r := range recs {
		if rr := r.RR(); rr.Type == "TXT" && rr.Name == name {
			out = append(out, rr.Data)
		}
	}
	slices.Sort(out)
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	if v == "" {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestFromEnvRejectsBadSettingsWithClearErrors(t *testing.T) {
	good := env(sentinel)
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"nothing set", nil, "AZURE_TENANT_ID is not set"},
		{"no secret", with(good, "AZURE_CLIENT_SECRET", ""), "AZURE_CLIENT_SECRET is not set: create a client secret"},
		{"no subscription", with(good, "AZURE_SUBSCRIPTION_ID", ""), "AZURE_SUBSCRIPTION_ID is not set"},
		{"no resource group", with(good, "AZURE_RESOURCE_GROUP", ""), "AZURE_RESOURCE_GROUP is not set"},
		{"tenant not an id", with(good, "AZURE_TENANT_ID", "my tenant"), `AZURE_TENANT_ID "my tenant" is neither a GUID nor a domain`},
		{"client id is a name", with(good, "AZURE_CLIENT_ID", "certfleet-app"), `AZURE_CLIENT_ID "certfleet-app" is not a GUID`},
		{"subscription is a name", with(good, "AZURE_SUBSCRIPTION_ID", "Pay-As-You-Go"), `AZURE_SUBSCRIPTION_ID "Pay-As-You-Go" is not a GUID`},
		{"bad resource group", with(good, "AZURE_RESOURCE_GROUP", "rg."), `AZURE_RESOURCE_GROUP "rg." is not a resource group name`},
		{"secret with newline", with(good, "AZURE_CLIENT_SECRET", sentinel+"\n"), "AZURE_CLIENT_SECRET contains whitespace"},
		{"secret id instead of value", with(good, "AZURE_CLIENT_SECRET", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), "that is the secret's id, give the secret's value"},
		{"unknown cloud", with(good, "AZURE_ENVIRONMENT", "germany"), `AZURE_ENVIRONMENT "germany" is not an Azure cloud`},
		{"both NAME and NAME_FILE", with(good, "AZURE_CLIENT_SECRET_FILE", writeFile(t, sentinel)), "both set"},
		{"unreadable file", with(with(good, "AZURE_CLIENT_SECRET", ""), "AZURE_CLIENT_SECRET_FILE", filepath.Join(t.TempDir(), "missing")), "AZURE_CLIENT_SECRET_FILE: reading"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := azure.FromEnv(secretenv.Map(tc.env))
			if err == nil {
				t.Fatalf("FromEnv = %v, want an error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SENTINEL") {
				t.Errorf("error shows the secret: %q", err)
			}
		})
	}
}

func TestNewNamesConfigFields(t *testing.T) {
	_, err := azure.New(azure.Config{})
	for _, want := range []string{"TenantID is not set", "ClientID is not set", "ClientSecret is not set", "SubscriptionID is not set", "ResourceGroup is not set"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(Config{}) error = %v, want %q", err, want)
		}
	}
}

func TestRegisteredAsAzureAndReadsSecretFromFile(t *testing.T) {
	p, err := dnsprovider.FromGetenv("azure", secretenv.Map(with(with(env(""), "AZURE_CLIENT_SECRET_FILE", writeFile(t, sentinel+"\n")), "AZURE_ENVIRONMENT", "China")))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*azure.Provider); !ok || dnsprovider.Name(p) != "azure" {
		t.Fatalf("FromGetenv gave %T named %q", p, dnsprovider.Name(p))
	}
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, "example.com.", "other.org.")
	f.SetPageSize(1) // every listing pages
	p := provider(t, config(f))
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	ctx := context.Background()
	long := strings.Repeat("y", 600)
	recs := []libdns.Record{txt("_acme-challenge", "one"), txt("_acme-challenge", "two"), txt("@", long)}
	if _, err := p.AppendRecords(ctx, "Example.COM.", recs); err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	g := p.(libdns.RecordGetter)
	if got := texts(t, g, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("GetRecords = %v", got)
	}
	if got := texts(t, mem, "example.com.", "@"); len(got) != 1 || got[0] != long {
		t.Fatalf("backend apex TXT = %q, want the long value intact", got)
	}
	if _, err := p.AppendRecords(ctx, "example.com", recs[:1]); err != nil {
		t.Fatalf("second AppendRecords: %v", err)
	}
	deleted, err := p.DeleteRecords(ctx, "example.com.", []libdns.Record{recs[0], txt("_acme-challenge", "absent")})
	if err != nil || len(deleted) != 1 || deleted[0].RR().Data != "one" || deleted[0].RR().Name != "_acme-challenge" {
		t.Fatalf("DeleteRecords = %v, %v; want the one deleted record", deleted, err)
	}
	// The other value of the record set stays (libdns/azure would delete
	// the whole set).
	if got := texts(t, mem, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("backend = %v", got)
	}
	if _, err := p.DeleteRecords(ctx, "example.com.", recs[1:]); err != nil {
		t.Fatal(err)
	}
	if all, _ := mem.GetRecords(ctx, "example.com."); len(all) != 0 {
		t.Fatalf("backend holds %v after deleting everything", all)
	}
	zones, err := p.(libdns.ZoneLister).ListZones(ctx)
	if err != nil || len(zones) != 2 || zones[0].Name != "example.com." || zones[1].Name != "other.org." {
		t.Fatalf("ListZones = %v, %v", zones, err)
	}
	if n := f.Stats().Ops["Token"]; n != 1 {
		t.Errorf("%d token requests, want 1 (the token is reused)", n)
	}
	if _, err := p.AppendRecords(ctx, "example.com.", []libdns.Record{libdns.CNAME{Name: "www", Target: "x."}}); err == nil || !strings.Contains(err.Error(), "writes TXT records only") {
		t.Errorf("CNAME append error = %v", err)
	}
}

// Two providers (two fleet members) appending to the same record set at
// once both succeed, and neither value is lost: Azure refuses a write whose
// ETag is stale, and the loser reads again.
func TestConcurrentWritersToOneRecordSetLoseNoValue(t *testing.T) {
	f, mem := fake(t, "example.com.")
	a, b := provider(t, config(f)), provider(t, config(f))
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		p := a
		if i%2 == 1 {
			p = b
		}
		wg.Go(func() {
			_, err := p.AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("_acme-challenge", fmt.Sprint("v", i))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := texts(t, mem, "example.com.", "_acme-challenge"); len(got) != 10 {
		t.Fatalf("backend holds %v, want 10 values", got)
	}
}

func TestPermanentErrorsFailFastNamingProviderZoneAndCause(t *testing.T) {
	f, _ := fake(t, "example.com.")
	cases := []struct {
		name string
		edit func(*azure.Config)
		zone string
		want []string
	}{
		{"wrong secret", func(c *azure.Config) { c.ClientSecret = "wrong~secret" }, "example.com.",
			[]string{`azure: append in zone "example.com."`, "permanent error", "HTTP 401", "invalid_client", "AADSTS7000215", "DNS Zone Contributor"}},
		{"unknown tenant", func(c *azure.Config) { c.TenantID = "contoso.onmicrosoft.com" }, "example.com.",
			[]string{"permanent error", "HTTP 400", "AADSTS90002"}},
		{"other subscription", func(c *azure.Config) { c.SubscriptionID = "99999999-2222-3333-4444-555555555555" }, "example.com.",
			[]string{"permanent error", "HTTP 403", "AuthorizationFailed", "DNS Zone Contributor"}},
		{"unknown zone", func(*azure.Config) {}, "nosuch.org.",
			[]string{`azure: append in zone "nosuch.org."`, "permanent error", `zone "nosuch.org" is not in resource group "dns-rg"`, "ParentResourceNotFound"}},
		{"wrong resource group", func(c *azure.Config) { c.ResourceGroup = "other-rg" }, "example.com.",
			[]string{"permanent error", "ResourceGroupNotFound", "AZURE_RESOURCE_GROUP"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(f)
			tc.edit(&cfg)
			p := dnsprovider.WithRetry(provider(t, cfg), dnsprovider.RetryPolicy{BaseDelay: time.Millisecond})
			_, err := p.AppendRecords(context.Background(), tc.zone, []libdns.Record{txt("x", "v")})
			var oe *dnsprovider.OpError
			if !errors.As(err, &oe) || oe.Temporary || oe.Attempts != 1 {
				t.Fatalf("err = %v, want a permanent *OpError after 1 attempt", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error shows the secret")
			}
		})
	}
}

func TestAPIErrorsCarryStatusAndRetryAfter(t *testing.T) {
	f, _ := fake(t, "example.com.")
	f.SetFaults(apifake.Faults{RetryAfter: 3 * time.Second})
	p := provider(t, config(f))
	ctx := context.Background()
	if _, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	f.FailNext(1, http.StatusTooManyRequests)
	_, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")})
	var se *dnsprovider.StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Code != "TooManyRequests" || !dnsprovider.IsTransientAPIError(err) {
		t.Fatalf("err = %v, want a transient 429 StatusError", err)
	}
	if d, ok := dnsprovider.RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter = %s, %t; want 3s", d, ok)
	}
	f.SetFaults(apifake.Faults{Rate: 1, Seed: 2})
	for range 10 {
		if _, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.com"); err == nil || !dnsprovider.IsTransientAPIError(err) {
			t.Fatalf("injected fault gave %v, want a transient error", err)
		}
	}
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, "example.com.")
	f.SetFaults(apifake.Faults{Rate: 0.3, LostRate: 0.05, Seed: 42})
	p := dnsprovider.WithRetry(provider(t, config(f)), dnsprovider.RetryPolicy{
		MaxAttempts: 40, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
	})
	apifake.CheckWritesThroughFaults(t, p, mem, "example.com.")
	st := f.Stats()
	if st.Faults < 20 {
		t.Errorf("only %d faults injected in %d requests", st.Faults, st.Requests)
	}
	t.Logf("%d requests, %d faults injected", st.Requests, st.Faults)
}

func TestGuardRefusesOutOfZoneWriteWithoutAPICall(t *testing.T) {
	f, _ := fake(t, "example.com.", "evil.com.")
	p := dnsprovider.Guard(provider(t, config(f)), "example.com")
	_, err := p.AppendRecords(context.Background(), "evil.com.", []libdns.Record{txt("_acme-challenge", "v")})
	if !errors.Is(err, dnsprovider.ErrZoneNotAllowed) {
		t.Fatalf("err = %v", err)
	}
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("the API received %d requests for a refused write", n)
	}
}

func TestSecretNeverAppearsInLogsErrorsOrFormattedValues(t *testing.T) {
	f, _ := fake(t, "example.com.")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config(f)
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, cfg))
	}
	ctx := context.Background()
	// The fake's secret is the sentinel; the second provider sends the
	// sentinel with a suffix and is refused.
	for _, secret := range []string{sentinel, sentinel + "x"} {
		c := cfg
		c.ClientSecret = secret
		inner := provider(t, c)
		p := dnsprovider.Audit(dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), logger)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			outputs = append(outputs, fmt.Sprintf(verb, inner), fmt.Sprintf(verb, p))
		}
		logger.Info("provider", "p", inner, "cfg", c)
		if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
		if _, err := p.DeleteRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			outputs = append(outputs, err.Error())
		}
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("text", "cfg", cfg)
	outputs = append(outputs, logs.String())
	for _, want := range []string{`"msg":"dns change"`, "AADSTS7000215"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the test did not exercise %q: %s", want, logs.String())
		}
	}
	for _, s := range outputs {
		if strings.Contains(s, "SENTINEL") || strings.Contains(s, fmt.Sprintf("%x", sentinel)) {
			t.Fatalf("the secret appears in %q", s)
		}
	}
}
