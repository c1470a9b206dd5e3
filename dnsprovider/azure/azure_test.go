package azure_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/azure"
	"github.com/certfleet/certfleet/dnsprovider/internal/providertest"
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
	return providertest.Start(t, func(b apifake.Backend) *apifake.Azure { return apifake.NewAzure(b, creds) }, zones...)
}

func provider(t *testing.T, cfg azure.Config) dnsprovider.Provider {
	t.Helper()
	return providertest.New(t, azure.New, cfg)
}

func TestFromEnvRejectsBadSettingsWithClearErrors(t *testing.T) {
	good := env(sentinel)
	with := providertest.With
	providertest.CheckFromEnvRejects(t, azure.FromEnv, []providertest.EnvCase{
		{Name: "nothing set", Env: nil, Want: "AZURE_TENANT_ID is not set"},
		{Name: "no secret", Env: with(good, "AZURE_CLIENT_SECRET", ""), Want: "AZURE_CLIENT_SECRET is not set: create a client secret"},
		{Name: "no subscription", Env: with(good, "AZURE_SUBSCRIPTION_ID", ""), Want: "AZURE_SUBSCRIPTION_ID is not set"},
		{Name: "no resource group", Env: with(good, "AZURE_RESOURCE_GROUP", ""), Want: "AZURE_RESOURCE_GROUP is not set"},
		{Name: "tenant not an id", Env: with(good, "AZURE_TENANT_ID", "my tenant"), Want: `AZURE_TENANT_ID "my tenant" is neither a GUID nor a domain`},
		{Name: "client id is a name", Env: with(good, "AZURE_CLIENT_ID", "certfleet-app"), Want: `AZURE_CLIENT_ID "certfleet-app" is not a GUID`},
		{Name: "subscription is a name", Env: with(good, "AZURE_SUBSCRIPTION_ID", "Pay-As-You-Go"), Want: `AZURE_SUBSCRIPTION_ID "Pay-As-You-Go" is not a GUID`},
		{Name: "bad resource group", Env: with(good, "AZURE_RESOURCE_GROUP", "rg."), Want: `AZURE_RESOURCE_GROUP "rg." is not a resource group name`},
		{Name: "secret with newline", Env: with(good, "AZURE_CLIENT_SECRET", sentinel+"\n"), Want: "AZURE_CLIENT_SECRET contains whitespace"},
		{Name: "secret id instead of value", Env: with(good, "AZURE_CLIENT_SECRET", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), Want: "that is the secret's id, give the secret's value"},
		{Name: "unknown cloud", Env: with(good, "AZURE_ENVIRONMENT", "germany"), Want: `AZURE_ENVIRONMENT "germany" is not an Azure cloud`},
		{Name: "both NAME and NAME_FILE", Env: with(good, "AZURE_CLIENT_SECRET_FILE", providertest.WriteFile(t, sentinel)), Want: "both set"},
		{Name: "unreadable file", Env: with(with(good, "AZURE_CLIENT_SECRET", ""), "AZURE_CLIENT_SECRET_FILE", filepath.Join(t.TempDir(), "missing")), Want: "AZURE_CLIENT_SECRET_FILE: reading"},
	}, "SENTINEL")
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
	env := providertest.With(providertest.With(env(""), "AZURE_CLIENT_SECRET_FILE", providertest.WriteFile(t, sentinel+"\n")), "AZURE_ENVIRONMENT", "China")
	providertest.CheckRegistered[*azure.Provider](t, "azure", env)
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, "example.com.", "other.org.")
	f.SetPageSize(1) // every listing pages
	p := provider(t, config(f))
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	// libdns/azure would delete the whole record set where one value goes;
	// the round trip checks that the other value stays.
	providertest.CheckRoundTrip(t, p, mem, "example.com.", providertest.TXT("@", strings.Repeat("y", 600)))
	providertest.CheckZones(t, p, "example.com.", "other.org.")
	if n := f.Stats().Ops["Token"]; n != 1 {
		t.Errorf("%d token requests, want 1 (the token is reused)", n)
	}
	if _, err := p.AppendRecords(context.Background(), "example.com.", []libdns.Record{libdns.CNAME{Name: "www", Target: "x."}}); err == nil || !strings.Contains(err.Error(), "writes TXT records only") {
		t.Errorf("CNAME append error = %v", err)
	}
}

// Two providers (two fleet members) appending to the same record set at
// once both succeed, and neither value is lost: Azure refuses a write whose
// ETag is stale, and the loser reads again.
func TestConcurrentWritersToOneRecordSetLoseNoValue(t *testing.T) {
	f, mem := fake(t, "example.com.")
	providertest.CheckConcurrentAppends(t, provider(t, config(f)), provider(t, config(f)), mem, "example.com.")
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
			_, err := p.AppendRecords(context.Background(), tc.zone, []libdns.Record{providertest.TXT("x", "v")})
			providertest.CheckPermanent(t, err, tc.want...)
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error shows the secret")
			}
		})
	}
}

func TestAPIErrorsCarryStatusAndRetryAfter(t *testing.T) {
	f, _ := fake(t, "example.com.")
	providertest.CheckStatusErrors(t, f, provider(t, config(f)), "example.com", "TooManyRequests")
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, "example.com.")
	providertest.CheckRetryThroughFaults(t, f, provider(t, config(f)), mem, "example.com.")
}

func TestGuardRefusesOutOfZoneWriteWithoutAPICall(t *testing.T) {
	f, _ := fake(t, "example.com.", "evil.com.")
	providertest.CheckGuardRefuses(t, f, provider(t, config(f)), "example.com", "evil.com.")
}

func TestSecretNeverAppearsInLogsErrorsOrFormattedValues(t *testing.T) {
	f, _ := fake(t, "example.com.")
	leaks := providertest.NewLeaks()
	cfg := config(f)
	leaks.Format(cfg)
	// The fake's secret is the sentinel; the second provider sends the
	// sentinel with a suffix and is refused.
	for _, secret := range []string{sentinel, sentinel + "x"} {
		c := cfg
		c.ClientSecret = secret
		inner := provider(t, c)
		p := dnsprovider.Audit(dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), leaks.Logger)
		leaks.Show(c, inner, p)
		leaks.Write(p, "example.com")
	}
	leaks.Check(t, cfg, []string{`"msg":"dns change"`, "AADSTS7000215"}, "SENTINEL", fmt.Sprintf("%x", sentinel))
}
