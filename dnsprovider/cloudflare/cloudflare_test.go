package cloudflare_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/certfleet/certfleet/dnsprovider/internal/providertest"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	libdnscf "github.com/libdns/cloudflare"
	"github.com/libdns/libdns"
)

// sentinel is a token that must never appear in an error, log or
// formatted value.
const sentinel = "SENTINELcfTOKEN0123456789abcdefXYZ"

func fake(t *testing.T, token string, zones ...string) (*apifake.Cloudflare, *apifake.Memory) {
	t.Helper()
	return providertest.Start(t, func(b apifake.Backend) *apifake.Cloudflare { return apifake.NewCloudflare(b, token) }, zones...)
}

func provider(t *testing.T, f *apifake.Cloudflare, token string) dnsprovider.Provider {
	t.Helper()
	return providertest.New(t, cloudflare.New, cloudflare.Config{APIToken: token, HTTPClient: f.Client()})
}

func TestFromEnvRejectsBadSettingsWithClearErrors(t *testing.T) {
	providertest.CheckFromEnvRejects(t, cloudflare.FromEnv, []providertest.EnvCase{
		{Name: "missing token", Env: nil, Want: "CLOUDFLARE_API_TOKEN is not set: create a Cloudflare API token with Zone.DNS:Edit"},
		{Name: "lego's variable name", Env: map[string]string{"CF_DNS_API_TOKEN": sentinel}, Want: "CF_DNS_API_TOKEN is set, but certfleet reads CLOUDFLARE_API_TOKEN"},
		{Name: "global key instead of token", Env: map[string]string{"CLOUDFLARE_API_KEY": sentinel}, Want: "Global API Key is set"},
		{Name: "trailing newline", Env: map[string]string{"CLOUDFLARE_API_TOKEN": sentinel + "\n"}, Want: "CLOUDFLARE_API_TOKEN contains whitespace"},
		{Name: "inner space", Env: map[string]string{"CLOUDFLARE_API_TOKEN": "SENTINEL " + sentinel}, Want: "CLOUDFLARE_API_TOKEN contains whitespace"},
		{Name: "both NAME and NAME_FILE", Env: map[string]string{"CLOUDFLARE_API_TOKEN": sentinel, "CLOUDFLARE_API_TOKEN_FILE": providertest.WriteFile(t, sentinel)}, Want: "both set"},
		{Name: "unreadable file", Env: map[string]string{"CLOUDFLARE_API_TOKEN_FILE": filepath.Join(t.TempDir(), "missing")}, Want: "CLOUDFLARE_API_TOKEN_FILE: reading"},
		{Name: "empty file", Env: map[string]string{"CLOUDFLARE_API_TOKEN_FILE": providertest.WriteFile(t, "\n")}, Want: "is empty"},
		{Name: "global API key as token", Env: map[string]string{"CLOUDFLARE_API_TOKEN": "0123456789abcdef0123456789abcdef01234"}, Want: "looks like a Cloudflare Global API Key"},
		{Name: "bad zone token", Env: map[string]string{"CLOUDFLARE_API_TOKEN": sentinel, "CLOUDFLARE_ZONE_TOKEN": sentinel + "\t"}, Want: "CLOUDFLARE_ZONE_TOKEN contains whitespace"},
	}, "SENTINEL")
}

func TestFromEnvReadsTokensFromFiles(t *testing.T) {
	p, err := cloudflare.FromEnv(secretenv.Map(map[string]string{
		"CLOUDFLARE_API_TOKEN_FILE":  providertest.WriteFile(t, sentinel+"\n"),
		"CLOUDFLARE_ZONE_TOKEN_FILE": providertest.WriteFile(t, sentinel+"zone\r\n"),
	}))
	if err != nil || p == nil {
		t.Fatalf("FromEnv = %v, %v", p, err)
	}
}

func TestNewRejectsEmptyToken(t *testing.T) {
	if _, err := cloudflare.New(cloudflare.Config{}); err == nil || !strings.Contains(err.Error(), "APIToken is empty") {
		t.Fatalf("New(Config{}) error = %v", err)
	}
}

func TestRegisteredAsCloudflare(t *testing.T) {
	providertest.CheckRegistered[*cloudflare.Provider](t, "cloudflare", map[string]string{"CLOUDFLARE_API_TOKEN": sentinel})
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, sentinel, "example.com.")
	p := provider(t, f, sentinel)
	// Appending again must be idempotent: Cloudflare refuses identical records.
	providertest.CheckRoundTrip(t, p, mem, "example.com.")
	providertest.CheckZones(t, p, "example.com.")
}

func TestPermanentErrorsFailFastNamingProviderZoneAndCause(t *testing.T) {
	f, _ := fake(t, "the-right-token", "example.com.")
	cases := []struct {
		name  string
		token string
		zone  string
		want  []string
	}{
		{"bad token", sentinel, "example.com.", []string{`cloudflare: append in zone "example.com."`, "permanent error", "HTTP 403", "9109", "Invalid access token", "Zone.DNS:Edit"}},
		{"unknown zone", "the-right-token", "nosuch.org.", []string{`cloudflare: append in zone "nosuch.org."`, "permanent error", `zone "nosuch.org" is not in the Cloudflare account`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.ResetStats()
			p := dnsprovider.WithRetry(provider(t, f, tc.token), dnsprovider.RetryPolicy{BaseDelay: time.Millisecond})
			_, err := p.AppendRecords(context.Background(), tc.zone, []libdns.Record{providertest.TXT("x", "v")})
			providertest.CheckPermanent(t, err, tc.want...)
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error shows the token")
			}
			if n := f.Stats().Requests; n != 1 {
				t.Errorf("%d API requests, want 1 (no retry)", n)
			}
		})
	}
}

// The injected faults include an HTML error page of Cloudflare's edge,
// which must be classified too.
func TestAPIErrorsCarryStatusAndRetryAfter(t *testing.T) {
	f, _ := fake(t, sentinel, "example.com.")
	providertest.CheckStatusErrors(t, f, provider(t, f, sentinel), "example.com", "971")
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, sentinel, "example.com.")
	providertest.CheckRetryThroughFaults(t, f, provider(t, f, sentinel), mem, "example.com.")
}

func TestGuardRefusesOutOfZoneWriteWithoutAPICall(t *testing.T) {
	f, _ := fake(t, sentinel, "example.com.", "evil.com.")
	providertest.CheckGuardRefuses(t, f, provider(t, f, sentinel), "example.com", "evil.com.")
}

func TestTokenNeverAppearsInLogsErrorsOrFormattedValues(t *testing.T) {
	good, _ := fake(t, sentinel, "example.com.")
	bad, _ := fake(t, "another-token", "example.com.")
	leaks := providertest.NewLeaks()
	cfg := cloudflare.Config{APIToken: sentinel, ZoneToken: sentinel}
	leaks.Format(cfg)
	for _, f := range []*apifake.Cloudflare{good, bad} {
		p := dnsprovider.Audit(dnsprovider.WithRetry(provider(t, f, sentinel), dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), leaks.Logger, dnsprovider.AuditMember("m1"))
		inner := p.(interface{ Unwrap() dnsprovider.Provider }).Unwrap().(interface{ Unwrap() dnsprovider.Provider }).Unwrap()
		leaks.Show(cfg, inner, p)
		leaks.Write(p, "example.com")
	}
	leaks.Check(t, cfg, []string{`"msg":"dns change"`, "Invalid access token"}, sentinel, fmt.Sprintf("%x", sentinel))
}

// libdns/cloudflare v0.2.2 ignores a failed lookup before a TXT delete and
// reports success; certfleet's provider reports the failure.
func TestDeleteReportsFailedLookupThatLibdnsIgnores(t *testing.T) {
	f, mem := fake(t, sentinel, "example.com.")
	raw := &libdnscf.Provider{APIToken: sentinel, HTTPClient: f.Client()}
	ours := provider(t, f, sentinel)
	ctx := context.Background()
	rec := []libdns.Record{providertest.TXT("_acme-challenge", "v")}
	if _, err := ours.AppendRecords(ctx, "example.com", rec); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.GetRecords(ctx, "example.com"); err != nil { // caches the zone id
		t.Fatal(err)
	}
	f.FailNext(1, 500)
	if _, err := raw.DeleteRecords(ctx, "example.com", rec); err != nil {
		t.Fatalf("libdns/cloudflare now reports the failed lookup (%v): the workaround in call may be dropped", err)
	}
	if got := providertest.Texts(t, mem, "example.com.", "_acme-challenge"); len(got) != 1 {
		t.Fatalf("backend = %v", got)
	}
	f.FailNext(1, 500)
	if _, err := ours.DeleteRecords(ctx, "example.com", rec); err == nil || !dnsprovider.IsTransientAPIError(err) {
		t.Fatalf("DeleteRecords error = %v, want the transient failure of the lookup", err)
	}
}

// answerFunc is an HTTPClient that answers every request itself.
type answerFunc func(*http.Request) string

func (f answerFunc) Do(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(f(req))), Request: req}, nil
}

// A malformed answer that makes libdns/cloudflare panic (division by a zero
// per_page) is an error, not a crash.
func TestMalformedAnswerIsAnErrorNotAPanic(t *testing.T) {
	client := answerFunc(func(req *http.Request) string {
		if strings.HasSuffix(req.URL.Path, "/zones") {
			return `{"success":true,"result":[{"id":"z1","name":"example.com"}]}`
		}
		return `{"success":true,"result":[],"result_info":{"page":1,"per_page":0,"count":0,"total_count":0}}`
	})
	p, err := cloudflare.New(cloudflare.Config{APIToken: sentinel, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.(libdns.RecordGetter).GetRecords(context.Background(), "example.com")
	if err == nil || !strings.Contains(err.Error(), "unexpected API answer") {
		t.Fatalf("err = %v", err)
	}
}
