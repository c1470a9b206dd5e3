package googleclouddns_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/certfleet/certfleet/dnsprovider/googleclouddns"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/libdns/libdns"
)

const project = "certfleet-test"

// sentinel stands for a secret in keys that must never be shown.
const sentinel = "SENTINELgcpKEY0123456789"

func fake(t *testing.T, zones ...string) (*apifake.GoogleCloudDNS, *apifake.Memory) {
	t.Helper()
	mem := apifake.NewMemory(zones...)
	f := apifake.NewGoogleCloudDNS(mem, project)
	t.Cleanup(f.Close)
	return f, mem
}

func provider(t *testing.T, f *apifake.GoogleCloudDNS) dnsprovider.Provider {
	t.Helper()
	p, err := googleclouddns.New(googleclouddns.Config{ServiceAccountJSON: f.ServiceAccountJSON(), HTTPClient: f.Client()})
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
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
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
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no key", nil, "no Google service-account key: set GOOGLE_APPLICATION_CREDENTIALS to the path"},
		{"missing credentials file", map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": filepath.Join(t.TempDir(), "nope.json")}, "GOOGLE_APPLICATION_CREDENTIALS: reading"},
		{"not JSON", map[string]string{"GCE_SERVICE_ACCOUNT": "{" + sentinel}, "GCE_SERVICE_ACCOUNT is not valid JSON (syntax error at byte"},
		{"wrong JSON shape", map[string]string{"GCE_SERVICE_ACCOUNT": `{"type": 1, "private_key": "` + sentinel + `"}`}, "GCE_SERVICE_ACCOUNT is not a service-account key"},
		{"user credentials", map[string]string{"GCE_SERVICE_ACCOUNT": `{"type":"authorized_user","client_secret":"` + sentinel + `"}`}, "gcloud user credentials (type authorized_user)"},
		{"workload identity", map[string]string{"GCE_SERVICE_ACCOUNT": `{"type":"external_account"}`}, "external_account credentials, which certfleet does not support"},
		{"bad private key", map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"private_key": sentinel})}, "has no PEM private_key"},
		{"corrupt private key", map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"private_key": "-----BEGIN PRIVATE KEY-----\nU0VOVElORUw=\n-----END PRIVATE KEY-----\n"})}, "has a private_key that does not parse"},
		{"no client email", map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"client_email": nil})}, "has no valid client_email"},
		{"plain http token endpoint", map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"token_uri": "http://oauth2.example/token"})}, "it must be an https URL"},
		{"other universe", map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"universe_domain": "example.net"})}, `universe domain "example.net"`},
		{"no project anywhere", map[string]string{"GCE_SERVICE_ACCOUNT": keyWith(t, f, map[string]any{"project_id": nil})}, "the key has no project_id, set GCE_PROJECT"},
		{"bad project", map[string]string{"GCE_SERVICE_ACCOUNT": good, "GCE_PROJECT": "My Project"}, `GCE_PROJECT "My Project" is not a Google Cloud project id`},
		{"bad cloud project", map[string]string{"GCE_SERVICE_ACCOUNT": good, "GOOGLE_CLOUD_PROJECT": "x"}, `GOOGLE_CLOUD_PROJECT "x" is not`},
		{"both NAME and NAME_FILE", map[string]string{"GCE_SERVICE_ACCOUNT": good, "GCE_SERVICE_ACCOUNT_FILE": writeFile(t, good)}, "both set"},
		{"bad key from file", map[string]string{"GCE_SERVICE_ACCOUNT_FILE": writeFile(t, "[]")}, "GCE_SERVICE_ACCOUNT_FILE is not a service-account key"},
		{"bad key from credentials file", map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": writeFile(t, sentinel)}, "GOOGLE_APPLICATION_CREDENTIALS ("},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := googleclouddns.FromEnv(secretenv.Map(tc.env))
			if err == nil {
				t.Fatalf("FromEnv = %v, want an error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SENTINEL") || strings.Contains(err.Error(), keyBody(t, f)) {
				t.Errorf("error shows a secret: %q", err)
			}
		})
	}
}

func TestFromEnvReadsKeyFromEachSourceAndProjectFromEachVariable(t *testing.T) {
	f, _ := fake(t, "example.com.")
	key := string(f.ServiceAccountJSON())
	for _, env := range []map[string]string{
		{"GOOGLE_APPLICATION_CREDENTIALS": writeFile(t, key)},
		{"GCE_SERVICE_ACCOUNT": key},
		{"GCE_SERVICE_ACCOUNT_FILE": writeFile(t, key+"\n")},
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
	p, err := dnsprovider.FromGetenv("googleclouddns", secretenv.Map(map[string]string{"GCE_SERVICE_ACCOUNT": string(f.ServiceAccountJSON())}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*googleclouddns.Provider); !ok || dnsprovider.Name(p) != "googleclouddns" {
		t.Fatalf("FromGetenv gave %T named %q", p, dnsprovider.Name(p))
	}
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, "example.com.", "other.org.")
	f.SetPageSize(1) // every listing pages
	p := provider(t, f)
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	ctx := context.Background()
	long := strings.Repeat("x", 300) + `"quoted" \ back`
	recs := []libdns.Record{txt("_acme-challenge", "one"), txt("_acme-challenge", "two"), txt("", long)}
	if _, err := p.AppendRecords(ctx, "Example.COM", recs); err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	g := p.(libdns.RecordGetter)
	if got := texts(t, g, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("GetRecords = %v", got)
	}
	if got := texts(t, mem, "example.com.", "@"); len(got) != 1 || got[0] != long {
		t.Fatalf("backend apex TXT = %q, want the long value intact", got)
	}
	// Appending a value that is there already is idempotent.
	if _, err := p.AppendRecords(ctx, "example.com.", recs[:1]); err != nil {
		t.Fatalf("second AppendRecords: %v", err)
	}
	deleted, err := p.DeleteRecords(ctx, "example.com.", []libdns.Record{recs[0], txt("_acme-challenge", "absent")})
	if err != nil || len(deleted) != 1 || deleted[0].RR().Data != "one" || deleted[0].RR().Name != "_acme-challenge" {
		t.Fatalf("DeleteRecords = %v, %v; want the one deleted record", deleted, err)
	}
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
}

// Two providers (two fleet members) appending to the same record set at
// once both succeed, and neither value is lost: Cloud DNS refuses a change
// whose deletion no longer matches, and the loser reads again.
func TestConcurrentWritersToOneRecordSetLoseNoValue(t *testing.T) {
	f, mem := fake(t, "example.com.")
	a, b := provider(t, f), provider(t, f)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
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
			inner, err := googleclouddns.New(googleclouddns.Config{ServiceAccountJSON: tc.key, HTTPClient: f.Client()})
			if err != nil {
				t.Fatal(err)
			}
			p := dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{BaseDelay: time.Millisecond})
			f.ResetStats()
			_, err = p.AppendRecords(context.Background(), tc.zone, []libdns.Record{txt("x", "v")})
			var oe *dnsprovider.OpError
			if !errors.As(err, &oe) || oe.Temporary || oe.Attempts != 1 {
				t.Fatalf("err = %v, want a permanent *OpError after 1 attempt", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestAPIErrorsCarryStatusAndRetryAfterAndExpiredTokensAreRenewed(t *testing.T) {
	f, mem := fake(t, "example.com.")
	f.SetFaults(apifake.Faults{RetryAfter: 3 * time.Second})
	p := provider(t, f)
	ctx := context.Background()
	if _, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	f.FailNext(1, http.StatusTooManyRequests)
	_, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")})
	var se *dnsprovider.StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Code != "rateLimitExceeded" || !dnsprovider.IsTransientAPIError(err) {
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
	f.SetFaults(apifake.Faults{})
	// A revoked token is dropped on the 401, and the next call gets a new one.
	f.RevokeTokens()
	if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); cloudStatus(err) != 401 {
		t.Fatalf("err = %v, want HTTP 401", err)
	}
	if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
		t.Fatalf("after the 401: %v", err)
	}
	if got := texts(t, mem, "example.com.", "x"); !slices.Equal(got, []string{"v"}) {
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
	f.SetFaults(apifake.Faults{Rate: 0.3, LostRate: 0.05, Seed: 42})
	p := dnsprovider.WithRetry(provider(t, f), dnsprovider.RetryPolicy{
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
	p := dnsprovider.Guard(provider(t, f), "example.com")
	_, err := p.AppendRecords(context.Background(), "evil.com.", []libdns.Record{txt("_acme-challenge", "v")})
	if !errors.Is(err, dnsprovider.ErrZoneNotAllowed) {
		t.Fatalf("err = %v", err)
	}
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("the API received %d requests for a refused write", n)
	}
}

func TestKeyNeverAppearsInLogsErrorsOrFormattedValues(t *testing.T) {
	f, _ := fake(t, "example.com.")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	key := f.ServiceAccountJSON()
	cfg := googleclouddns.Config{ServiceAccountJSON: key, HTTPClient: f.Client()}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, cfg))
	}
	ctx := context.Background()
	for _, k := range [][]byte{key, []byte(keyWith(t, f, map[string]any{"client_email": "revoked@x.iam.gserviceaccount.com"}))} {
		inner, err := googleclouddns.New(googleclouddns.Config{ServiceAccountJSON: k, HTTPClient: f.Client()})
		if err != nil {
			t.Fatal(err)
		}
		p := dnsprovider.Audit(dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), logger)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			outputs = append(outputs, fmt.Sprintf(verb, inner), fmt.Sprintf(verb, p))
		}
		logger.Info("provider", "p", inner, "cfg", cfg)
		if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			outputs = append(outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
		if _, err := p.DeleteRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			outputs = append(outputs, err.Error())
		}
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("text", "cfg", cfg)
	outputs = append(outputs, logs.String())
	for _, want := range []string{`"msg":"dns change"`, "invalid_grant"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the test did not exercise %q: %s", want, logs.String())
		}
	}
	body := keyBody(t, f)
	for _, s := range outputs {
		if strings.Contains(s, body) || strings.Contains(s, fmt.Sprintf("%x", body[:16])) || strings.Contains(s, "PRIVATE KEY") {
			t.Fatalf("the key appears in %q", s)
		}
	}
}
