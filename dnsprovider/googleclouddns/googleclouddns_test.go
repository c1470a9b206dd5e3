package googleclouddns_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/googleclouddns"
	"github.com/certfleet/certfleet/dnsprovider/internal/providertest"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/libdns/libdns"
)

const project = "certfleet-test"

// sentinel stands for a secret in keys that must never be shown.
const sentinel = "SENTINELgcpKEY0123456789"

func fake(t *testing.T, zones ...string) (*apifake.GoogleCloudDNS, *apifake.Memory) {
	t.Helper()
	return providertest.Start(t, func(b apifake.Backend) *apifake.GoogleCloudDNS { return apifake.NewGoogleCloudDNS(b, project) }, zones...)
}

func provider(t *testing.T, f *apifake.GoogleCloudDNS) dnsprovider.Provider {
	t.Helper()
	return providertest.New(t, googleclouddns.New, googleclouddns.Config{ServiceAccountJSON: f.ServiceAccountJSON(), HTTPClient: f.Client()})
}

// keyWith returns the fake's key with fields changed.
func keyWith(t *testing.T, f *apifake.GoogleCloudDNS, changes map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(f.ServiceAccountJSON(), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// keyBody returns a piece of the PEM body of the fake's private key, which
// must never be shown.
func keyBody(t *testing.T, f *apifake.GoogleCloudDNS) string {
	t.Helper()
	var m map[string]string
	_ = json.Unmarshal(f.ServiceAccountJSON(), &m)
	lines := strings.Split(m["private_key"], "\n")
	return lines[3]
}

func TestFromEnvRejectsBadSettingsWithClearErrors(t *testing.T) {
	f, _ := fake(t)
	good := string(f.ServiceAccountJSON())
	cases := []providertest.EnvCase{
		{Name: "no key", Env: nil, Want: "no Google service-account key: set GOOGLE_APPLICATION_CREDENTIALS to the path"},
		{Name: "missing credentials file", Env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": filepath.Join(t.TempDir(), "nope.json")}, Want: "GOOGLE_APPLICATION_CREDENTIALS: reading"},
		{Name: "not JSON", Env: map[string]string{"GCE_SERVICE_ACCOUNT": "{" + sentinel}, Want: "GCE_SERVICE_ACCOUNT is not valid JSON (syntax error at byte"},
		{Name: "wrong JSON shape", Env: map[string]string{"GCE_SERVICE_ACCOUNT": `{"type": 1, "private_key": "` + sentinel + `"}`}, Want: "GCE_SERVICE_ACCOUNT is not a service-account key"},
		{Name: "user credentials", Env: map[string]string{"GCE_SERVICE_ACCOUNT": `{"type":"authorized_user","client_secret":"` + sentinel + `"}`}, Want: "gcloud user credentials (type authorized_user)"},
		{Name: "workload identity", Env: map[string]string{"GCE_SERVICE_ACCOUNT": `{"type":"external_account"}`}, Want: "external_account credentials, which certfleet does not support"},
		{Name: "bad private key", Env: map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"private_key": sentinel})}, Want: "has no PEM private_key"},
		{Name: "corrupt private key", Env: map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"private_key": "-----BEGIN PRIVATE KEY-----\nU0VOVElORUw=\n-----END PRIVATE KEY-----\n"})}, Want: "has a private_key that does not parse"},
		{Name: "no client email", Env: map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"client_email": nil})}, Want: "has no valid client_email"},
		{Name: "plain http token endpoint", Env: map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"token_uri": "http://oauth2.example/token"})}, Want: "it must be an https URL"},
		{Name: "other universe", Env: map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"universe_domain": "example.net"})}, Want: `universe domain "example.net"`},
		{Name: "no project anywhere", Env: map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"project_id": nil})}, Want: "the key has no project_id, set GCE_PROJECT"},
		{Name: "bad project", Env: map[string]string{"GCE_SERVICE_ACCOUNT": good, "GCE_PROJECT": "My Project"}, Want: `GCE_PROJECT "My Project" is not a Google Cloud project id`},
		{Name: "bad cloud project", Env: map[string]string{"GCE_SERVICE_ACCOUNT": good, "GOOGLE_CLOUD_PROJECT": "x"}, Want: `GOOGLE_CLOUD_PROJECT "x" is not`},
		{Name: "both NAME and NAME_FILE", Env: map[string]string{"GCE_SERVICE_ACCOUNT": good, "GCE_SERVICE_ACCOUNT_FILE": providertest.WriteFile(t, good)}, Want: "both set"},
		{Name: "bad key from file", Env: map[string]string{"GCE_SERVICE_ACCOUNT_FILE": providertest.WriteFile(t, "[]")}, Want: "GCE_SERVICE_ACCOUNT_FILE is not a service-account key"},
		{Name: "bad key from credentials file", Env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": providertest.WriteFile(t, sentinel)}, Want: "GOOGLE_APPLICATION_CREDENTIALS ("},
	}
	// The key's PEM body must not show either.
	providertest.CheckFromEnvRejects(t, googleclouddns.FromEnv, cases, "SENTINEL", keyBody(t, f))
}

func TestFromEnvReadsKeyFromEachSourceAndProjectFromEachVariable(t *testing.T) {
	f, _ := fake(t, "example.com.")
	key := string(f.ServiceAccountJSON())
	for _, env := range []map[string]string{
		{"GOOGLE_APPLICATION_CREDENTIALS": providertest.WriteFile(t, key)},
		{"GCE_SERVICE_ACCOUNT": key},
		{"GCE_SERVICE_ACCOUNT_FILE": providertest.WriteFile(t, key+"\n")},
		// The DNS-specific variable wins over the machine-wide one.
		{"GCE_SERVICE_ACCOUNT": key, "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent"},
		{"GCE_SERVICE_ACCOUNT": key, "GCE_PROJECT": "other-project"},
		{"GCE_SERVICE_ACCOUNT": key, "GOOGLE_CLOUD_PROJECT": "other-project"},
	} {
		p, err := googleclouddns.FromEnv(secretenv.Map(env))
		if err != nil {
			t.Fatalf("FromEnv(%v): %v", slices.Collect(func(yield func(string) bool) {
				for k := range env {
					yield(k)
				}
			}), err)
		}
		want := project
		if env["GCE_PROJECT"] != "" || env["GOOGLE_CLOUD_PROJECT"] != "" {
			want = "other-project"
		}
		if s := fmt.Sprint(p); !strings.Contains(s, `Project: "`+want+`"`) {
			t.Errorf("provider %s, want project %s", s, want)
		}
	}
}

func TestRegisteredAsGoogleCloudDNS(t *testing.T) {
	f, _ := fake(t)
	providertest.CheckRegistered[*googleclouddns.Provider](t, "googleclouddns", map[string]string{"GCE_SERVICE_ACCOUNT": string(f.ServiceAccountJSON())})
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, "example.com.", "other.org.")
	f.SetPageSize(1) // every listing pages
	p := provider(t, f)
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	// A long value with quotes and a backslash, at the apex named "": the
	// API takes TXT data quoted, and the value must come back intact.
	providertest.CheckRoundTrip(t, p, mem, "example.com.", providertest.TXT("", strings.Repeat("x", 300)+`"quoted" \ back`))
	providertest.CheckZones(t, p, "example.com.", "other.org.")
	if n := f.Stats().Ops["Token"]; n != 1 {
		t.Errorf("%d token requests, want 1 (the token is reused)", n)
	}
}

// Two providers (two fleet members) appending to the same record set at
// once both succeed, and neither value is lost: Cloud DNS refuses a change
// whose deletion no longer matches, and the loser reads again.
func TestConcurrentWritersToOneRecordSetLoseNoValue(t *testing.T) {
	f, mem := fake(t, "example.com.")
	providertest.CheckConcurrentAppends(t, provider(t, f), provider(t, f), mem, "example.com.")
}

func TestPermanentErrorsFailFastNamingProviderZoneAndCause(t *testing.T) {
	f, _ := fake(t, "example.com.")
	other, _ := fake(t, "example.com.")
	cases := []struct {
		name string
		key  []byte
		zone string
		want []string
	}{
		{"key of another account", []byte(keyWith(t, f, map[string]any{"client_email": "someone@else.iam.gserviceaccount.com"})), "example.com.",
			[]string{`googleclouddns: append in zone "example.com."`, "permanent error", "HTTP 400", "invalid_grant", "still exists and is enabled"}},
		{"project without access", []byte(keyWith(t, other, map[string]any{"project_id": "another-project"})), "example.com.",
			[]string{"permanent error", "HTTP 403", "forbidden", "DNS Administrator role"}},
		{"unknown zone", f.ServiceAccountJSON(), "nosuch.org.",
			[]string{`googleclouddns: append in zone "nosuch.org."`, "permanent error", `no managed zone for "nosuch.org." in project "certfleet-test"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inner := providertest.New(t, googleclouddns.New, googleclouddns.Config{ServiceAccountJSON: tc.key, HTTPClient: f.Client()})
			p := dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{BaseDelay: time.Millisecond})
			f.ResetStats()
			_, err := p.AppendRecords(context.Background(), tc.zone, []libdns.Record{providertest.TXT("x", "v")})
			providertest.CheckPermanent(t, err, tc.want...)
		})
	}
}

func TestAPIErrorsCarryStatusAndRetryAfterAndExpiredTokensAreRenewed(t *testing.T) {
	f, mem := fake(t, "example.com.")
	p := provider(t, f)
	providertest.CheckStatusErrors(t, f, p, "example.com", "rateLimitExceeded")
	ctx := context.Background()
	// A revoked token is dropped on the 401, and the next call gets a new one.
	f.RevokeTokens()
	if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{providertest.TXT("x", "v")}); cloudStatus(err) != 401 {
		t.Fatalf("err = %v, want HTTP 401", err)
	}
	if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{providertest.TXT("x", "v")}); err != nil {
		t.Fatalf("after the 401: %v", err)
	}
	if got := providertest.Texts(t, mem, "example.com.", "x"); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("backend = %v", got)
	}
}

func cloudStatus(err error) int {
	var se *dnsprovider.StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, "example.com.")
	providertest.CheckRetryThroughFaults(t, f, provider(t, f), mem, "example.com.")
}

func TestGuardRefusesOutOfZoneWriteWithoutAPICall(t *testing.T) {
	f, _ := fake(t, "example.com.", "evil.com.")
	providertest.CheckGuardRefuses(t, f, provider(t, f), "example.com", "evil.com.")
}

func TestKeyNeverAppearsInLogsErrorsOrFormattedValues(t *testing.T) {
	f, _ := fake(t, "example.com.")
	leaks := providertest.NewLeaks()
	key := f.ServiceAccountJSON()
	cfg := googleclouddns.Config{ServiceAccountJSON: key, HTTPClient: f.Client()}
	leaks.Format(cfg)
	for _, k := range [][]byte{key, []byte(keyWith(t, f, map[string]any{"client_email": "revoked@x.iam.gserviceaccount.com"}))} {
		inner := providertest.New(t, googleclouddns.New, googleclouddns.Config{ServiceAccountJSON: k, HTTPClient: f.Client()})
		p := dnsprovider.Audit(dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), leaks.Logger)
		leaks.Show(cfg, inner, p)
		leaks.Write(p, "example.com")
	}
	body := keyBody(t, f)
	leaks.Check(t, cfg, []string{`"msg":"dns change"`, "invalid_grant"}, body, fmt.Sprintf("%x", body[:16]), "PRIVATE KEY")
}
