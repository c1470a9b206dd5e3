package cloudflare_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
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
	mem := apifake.NewMemory(zones...)
	f := apifake.NewCloudflare(mem, token)
	t.Cleanup(f.Close)
	return f, mem
}

func provider(t *testing.T, f *apifake.Cloudflare, token string) dnsprovider.Provider {
	t.Helper()
	p, err := cloudflare.New(cloudflare.Config{APIToken: token, HTTPClient: f.Client()})
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

func TestFromEnvRejectsBadSettingsWithClearErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing token", nil, "CLOUDFLARE_API_TOKEN is not set: create a Cloudflare API token with Zone.DNS:Edit"},
		{"lego's variable name", map[string]string{"CF_DNS_API_TOKEN": sentinel}, "CF_DNS_API_TOKEN is set, but certfleet reads CLOUDFLARE_API_TOKEN"},
		{"global key instead of token", map[string]string{"CLOUDFLARE_API_KEY": sentinel}, "Global API Key is set"},
		{"trailing newline", map[string]string{"CLOUDFLARE_API_TOKEN": sentinel + "\n"}, "CLOUDFLARE_API_TOKEN contains whitespace"},
		{"inner space", map[string]string{"CLOUDFLARE_API_TOKEN": "SENTINEL " + sentinel}, "CLOUDFLARE_API_TOKEN contains whitespace"},
		{"both NAME and NAME_FILE", map[string]string{"CLOUDFLARE_API_TOKEN": sentinel, "CLOUDFLARE_API_TOKEN_FILE": writeFile(t, sentinel)}, "both set"},
		{"unreadable file", map[string]string{"CLOUDFLARE_API_TOKEN_FILE": filepath.Join(t.TempDir(), "missing")}, "CLOUDFLARE_API_TOKEN_FILE: reading"},
		{"empty file", map[string]string{"CLOUDFLARE_API_TOKEN_FILE": writeFile(t, "\n")}, "is empty"},
		{"global API key as token", map[string]string{"CLOUDFLARE_API_TOKEN": "0123456789abcdef0123456789abcdef01234"}, "looks like a Cloudflare Global API Key"},
		{"bad zone token", map[string]string{"CLOUDFLARE_API_TOKEN": sentinel, "CLOUDFLARE_ZONE_TOKEN": sentinel + "\t"}, "CLOUDFLARE_ZONE_TOKEN contains whitespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := cloudflare.FromEnv(secretenv.Map(tc.env))
			if err == nil {
				t.Fatalf("FromEnv = %v, want an error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SENTINEL") {
				t.Errorf("error shows the token: %q", err)
			}
		})
	}
}

func TestFromEnvReadsTokensFromFiles(t *testing.T) {
	p, err := cloudflare.FromEnv(secretenv.Map(map[string]string{
		"CLOUDFLARE_API_TOKEN_FILE":  writeFile(t, sentinel+"\n"),
		"CLOUDFLARE_ZONE_TOKEN_FILE": writeFile(t, sentinel+"zone\r\n"),
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
	p, err := dnsprovider.FromGetenv("cloudflare", secretenv.Map(map[string]string{"CLOUDFLARE_API_TOKEN": sentinel}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*cloudflare.Provider); !ok || dnsprovider.Name(p) != "cloudflare" {
		t.Fatalf("FromGetenv gave %T named %q", p, dnsprovider.Name(p))
	}
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, sentinel, "example.com.")
	p := provider(t, f, sentinel)
	ctx := context.Background()
	recs := []libdns.Record{txt("_acme-challenge", "one"), txt("_acme-challenge", "two")}
	added, err := p.AppendRecords(ctx, "Example.com.", recs)
	if err != nil || len(added) != 2 {
		t.Fatalf("AppendRecords = %v, %v", added, err)
	}
	g := p.(libdns.RecordGetter)
	if got := texts(t, g, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("GetRecords = %v", got)
	}
	// Appending again is idempotent (Cloudflare refuses identical records).
	if _, err := p.AppendRecords(ctx, "example.com", recs[:1]); err != nil {
		t.Fatalf("second AppendRecords: %v", err)
	}
	deleted, err := p.DeleteRecords(ctx, "example.com.", []libdns.Record{recs[0], txt("_acme-challenge", "absent")})
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0].RR().Data != "one" || deleted[0].RR().Name != "_acme-challenge" {
		t.Fatalf("DeleteRecords returned %v, want the one deleted record", deleted)
	}
	if got := texts(t, mem, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("backend = %v", got)
	}
	zones, err := p.(libdns.ZoneLister).ListZones(ctx)
	if err != nil || len(zones) != 1 || zones[0].Name != "example.com." {
		t.Fatalf("ListZones = %v, %v", zones, err)
	}
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
				t.Errorf("error shows the token")
			}
			if n := f.Stats().Requests; n != 1 {
				t.Errorf("%d API requests, want 1 (no retry)", n)
			}
		})
	}
}

func TestAPIErrorsCarryStatusAndRetryAfter(t *testing.T) {
	f, _ := fake(t, sentinel, "example.com.")
	f.SetFaults(apifake.Faults{RetryAfter: 3 * time.Second})
	p := provider(t, f, sentinel)
	ctx := context.Background()
	f.FailNext(1, 429)
	_, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")})
	var se *dnsprovider.StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Code != "971" || !dnsprovider.IsTransientAPIError(err) {
		t.Fatalf("err = %v, want a transient 429 StatusError", err)
	}
	if d, ok := dnsprovider.RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter = %s, %t; want 3s", d, ok)
	}
	// An HTML error page of Cloudflare's edge is classified too.
	f.SetFaults(apifake.Faults{Rate: 1, Seed: 2})
	for range 10 {
		_, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.com")
		if err == nil || !dnsprovider.IsTransientAPIError(err) {
			t.Fatalf("injected fault gave %v, want a transient error", err)
		}
	}
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, sentinel, "example.com.")
	f.SetFaults(apifake.Faults{Rate: 0.3, LostRate: 0.05, Seed: 42})
	p := dnsprovider.WithRetry(provider(t, f, sentinel), dnsprovider.RetryPolicy{
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
	f, _ := fake(t, sentinel, "example.com.", "evil.com.")
	p := dnsprovider.Guard(provider(t, f, sentinel), "example.com")
	_, err := p.AppendRecords(context.Background(), "evil.com.", []libdns.Record{txt("_acme-challenge", "v")})
	if !errors.Is(err, dnsprovider.ErrZoneNotAllowed) || !strings.Contains(err.Error(), `zone "evil.com."`) {
		t.Fatalf("err = %v", err)
	}
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("the API received %d requests for a refused write", n)
	}
}

func TestTokenNeverAppearsInLogsErrorsOrFormattedValues(t *testing.T) {
	good, _ := fake(t, sentinel, "example.com.")
	bad, _ := fake(t, "another-token", "example.com.")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	var texts []string

	cfg := cloudflare.Config{APIToken: sentinel, ZoneToken: sentinel}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		texts = append(texts, fmt.Sprintf(verb, cfg))
	}
	for _, f := range []*apifake.Cloudflare{good, bad} {
		p := dnsprovider.Audit(dnsprovider.WithRetry(provider(t, f, sentinel), dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), logger, dnsprovider.AuditMember("m1"))
		inner := p.(interface{ Unwrap() dnsprovider.Provider }).Unwrap().(interface{ Unwrap() dnsprovider.Provider }).Unwrap()
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			texts = append(texts, fmt.Sprintf(verb, inner), fmt.Sprintf(verb, p))
		}
		logger.Info("provider", "p", inner, "cfg", cfg)
		if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
		if _, err := p.DeleteRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			texts = append(texts, err.Error())
		}
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("text", "cfg", cfg)
	texts = append(texts, logs.String())
	if !strings.Contains(logs.String(), `"msg":"dns change"`) || !strings.Contains(logs.String(), "Invalid access token") {
		t.Fatalf("the test did not exercise audit records and errors: %s", logs.String())
	}
	for _, s := range texts {
		if strings.Contains(s, sentinel) || strings.Contains(s, fmt.Sprintf("%x", sentinel)) {
			t.Fatalf("the token appears in %q", s)
		}
	}
}

// libdns/cloudflare v0.2.2 ignores a failed lookup before a TXT delete and
// reports success; certfleet's provider reports the failure.
func TestDeleteReportsFailedLookupThatLibdnsIgnores(t *testing.T) {
	f, mem := fake(t, sentinel, "example.com.")
	raw := &libdnscf.Provider{APIToken: sentinel, HTTPClient: f.Client()}
	ours := provider(t, f, sentinel)
	ctx := context.Background()
	rec := []libdns.Record{txt("_acme-challenge", "v")}
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
	if got := texts(t, mem, "example.com.", "_acme-challenge"); len(got) != 1 {
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
