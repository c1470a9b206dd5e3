package route53_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/route53"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/libdns/libdns"
	libdnsr53 "github.com/libdns/route53"
)

// Tests here set process environment variables (the AWS SDK reads its
// chain, the endpoint included, from there), so none runs in parallel.

const (
	keyID    = "AKIAIOSFODNN7EXAMPLE"
	sentinel = "SENTINELsecretKEY0123456789abcdefXYZ/+"
	session  = "SENTINELsessionTOKEN0123456789"
)

// isolateAWS keeps the AWS SDK away from this machine's AWS settings.
func isolateAWS(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, v := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ROUTE_53", "AWS_MAX_ATTEMPTS", "AWS_CA_BUNDLE", "AWS_DEFAULTS_MODE", "AWS_RETRY_MODE"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

func fake(t *testing.T, zones ...string) (*apifake.Route53, *apifake.Memory) {
	t.Helper()
	isolateAWS(t)
	mem := apifake.NewMemory(zones...)
	f := apifake.NewRoute53(mem)
	t.Cleanup(f.Close)
	t.Setenv("AWS_ENDPOINT_URL_ROUTE_53", f.URL())
	return f, mem
}

// config returns a Config with static credentials and no SDK retries.
func config() route53.Config {
	return route53.Config{AccessKeyID: keyID, SecretAccessKey: sentinel, SessionToken: session, MaxAttempts: 1}
}

func provider(t *testing.T, cfg route53.Config) dnsprovider.Provider {
	t.Helper()
	p, err := route53.New(cfg)
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

func TestFromEnvRejectsBadSettingsWithClearErrorsAndNoExit(t *testing.T) {
	isolateAWS(t)
	cases := []struct {
		name    string
		env     map[string]string // through getenv
		process map[string]string // process environment, read by the AWS SDK
		want    string
	}{
		{"key id without secret", map[string]string{"AWS_ACCESS_KEY_ID": keyID}, nil, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
		{"secret without key id", map[string]string{"AWS_SECRET_ACCESS_KEY": sentinel}, nil, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"},
		{"session token alone", map[string]string{"AWS_SESSION_TOKEN": session}, nil, "AWS_SESSION_TOKEN is set without"},
		{"secret with newline", map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": sentinel + "\n"}, nil, "AWS_SECRET_ACCESS_KEY contains whitespace"},
		{"malformed key id", map[string]string{"AWS_ACCESS_KEY_ID": "AKIA-" + sentinel, "AWS_SECRET_ACCESS_KEY": sentinel}, nil, "AWS_ACCESS_KEY_ID is not an AWS access key id"},
		{"both NAME and NAME_FILE", map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": sentinel, "AWS_SECRET_ACCESS_KEY_FILE": writeFile(t, sentinel)}, nil, "both set"},
		{"unreadable file", map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY_FILE": filepath.Join(t.TempDir(), "missing")}, nil, "AWS_SECRET_ACCESS_KEY_FILE: reading"},
		{"bad region", map[string]string{"AWS_REGION": "us east 1"}, nil, `AWS_REGION: "us east 1" is not an AWS region name`},
		{"bad hosted zone id", map[string]string{"CERTFLEET_ROUTE53_HOSTED_ZONE_ID": "z-12 3"}, nil, "is not a Route 53 hosted zone id"},
		{"bad wait flag", map[string]string{"CERTFLEET_ROUTE53_WAIT_FOR_SYNC": "maybe"}, nil, "CERTFLEET_ROUTE53_WAIT_FOR_SYNC"},
		{"endpoint not a URL", map[string]string{"AWS_ENDPOINT_URL_ROUTE_53": "ftp://route53.local"}, nil, "AWS_ENDPOINT_URL_ROUTE_53: \"ftp://route53.local\" must be an http:// or https:// URL"},
		{"endpoint only in getenv", map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, nil, "reads it from the process environment only"},
		{"missing profile", map[string]string{"AWS_PROFILE": "nosuch"}, nil, "failed to get shared config profile, nosuch"},
		{"bad endpoint in process env", nil, map[string]string{"AWS_ENDPOINT_URL_ROUTE_53": "http://"}, "the Route 53 endpoint"},
		{"bad region in process env", nil, map[string]string{"AWS_REGION": "Not A Region"}, "the region of the AWS chain"},
		{"bad AWS_MAX_ATTEMPTS", nil, map[string]string{"AWS_MAX_ATTEMPTS": "abc"}, "loading the AWS configuration"},
		{"missing CA bundle", nil, map[string]string{"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, "loading the AWS configuration"},
		{"defaults mode auto", nil, map[string]string{"AWS_DEFAULTS_MODE": "auto"}, "choose standard, in-region or cross-region"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.process {
				t.Setenv(k, v)
			}
			p, err := route53.FromEnv(secretenv.Map(tc.env))
			if err == nil {
				t.Fatalf("FromEnv = %v, want an error", p)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SENTINEL") {
				t.Errorf("error shows a secret: %q", err)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	isolateAWS(t)
	cases := []struct {
		cfg  route53.Config
		want string
	}{
		{route53.Config{Region: "EU-WEST-1"}, `Region: "EU-WEST-1" is not an AWS region name`},
		{route53.Config{MaxAttempts: -1}, "MaxAttempts is -1"},
		{route53.Config{SyncTimeout: -time.Second}, "SyncTimeout is -1s"},
		{route53.Config{Profile: "nosuch"}, "failed to get shared config profile, nosuch"},
		{route53.Config{AccessKeyID: keyID}, "AccessKeyID is set but SecretAccessKey is not"},
	}
	for _, tc := range cases {
		if _, err := route53.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%v) error = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestLibdnsRoute53WouldExitWhereNewReturnsError shows why New loads the AWS
// configuration first: libdns/route53 itself ends the process.
func TestLibdnsRoute53WouldExitWhereNewReturnsError(t *testing.T) {
	if os.Getenv("CERTFLEET_TEST_LIBDNS_FATAL") == "1" {
		p := &libdnsr53.Provider{Region: "us-east-1"}
		_, _ = p.GetRecords(context.Background(), "example.com.")
		return // not reached: log.Fatalf exits
	}
	isolateAWS(t)
	t.Setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
	if _, err := route53.New(route53.Config{Region: "us-east-1"}); err == nil {
		t.Fatal("New succeeded with an unreadable AWS_CA_BUNDLE")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLibdnsRoute53WouldExitWhereNewReturnsError$")
	cmd.Env = append(os.Environ(), "CERTFLEET_TEST_LIBDNS_FATAL=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "unable to load AWS SDK config") {
		t.Fatalf("libdns/route53 subprocess: %v\n%s", err, out)
	}
}

func TestRegisteredAsRoute53(t *testing.T) {
	isolateAWS(t)
	p, err := dnsprovider.FromGetenv("route53", secretenv.Map(map[string]string{
		"AWS_ACCESS_KEY_ID_FILE": writeFile(t, keyID+"\n"), "AWS_SECRET_ACCESS_KEY_FILE": writeFile(t, sentinel+"\n"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*route53.Provider); !ok || dnsprovider.Name(p) != "route53" {
		t.Fatalf("FromGetenv gave %T named %q", p, dnsprovider.Name(p))
	}
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, "example.com.")
	f.SetCredentials(keyID, sentinel)
	p := provider(t, config())
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	ctx := context.Background()
	recs := []libdns.Record{txt("_acme-challenge", "one"), txt("_acme-challenge", "two")}
	if _, err := p.AppendRecords(ctx, "Example.COM", recs); err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	g := p.(libdns.RecordGetter)
	if got := texts(t, g, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("GetRecords = %v", got)
	}
	// Appending a value that is there already is idempotent (Route 53
	// refuses duplicate values in a record set).
	if _, err := p.AppendRecords(ctx, "example.com.", recs[:1]); err != nil {
		t.Fatalf("second AppendRecords: %v", err)
	}
	deleted, err := p.DeleteRecords(ctx, "example.com.", recs[:1])
	if err != nil || len(deleted) != 1 {
		t.Fatalf("DeleteRecords = %v, %v", deleted, err)
	}
	if got := texts(t, mem, "example.com.", "_acme-challenge"); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("backend = %v", got)
	}
	if n := f.Stats().Ops["ListHostedZonesByName"]; n == 0 {
		t.Error("the zone was not looked up by name")
	}
}

func TestHostedZoneIDAndWaitForSync(t *testing.T) {
	f, mem := fake(t, "example.com.")
	f.SetPendingPolls(0)
	cfg := config()
	cfg.HostedZoneID = "/hostedzone/" + f.HostedZoneID("example.com")
	cfg.WaitForSync = true
	p := provider(t, cfg)
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	if _, err := p.AppendRecords(context.Background(), "example.com", []libdns.Record{txt("x", "v")}); err != nil {
		t.Fatal(err)
	}
	if got := texts(t, mem, "example.com.", "x"); !slices.Equal(got, []string{"v"}) {
		t.Fatalf("backend = %v", got)
	}
	st := f.Stats()
	if st.Ops["ListHostedZonesByName"] != 0 || st.Ops["GetChange"] != 1 {
		t.Fatalf("Ops = %v, want no zone lookup and one GetChange", st.Ops)
	}
}

func TestPermanentErrorsFailFastNamingProviderZoneAndCause(t *testing.T) {
	f, _ := fake(t, "example.com.")
	cases := []struct {
		name string
		zone string
		want []string
	}{
		{"wrong secret", "example.com.", []string{`route53: append in zone "example.com."`, "permanent error", "HTTP 403", "SignatureDoesNotMatch", "check the AWS credentials"}},
		{"unknown zone", "nosuch.org.", []string{`route53: append in zone "nosuch.org."`, "permanent error", `no Route 53 hosted zone named "nosuch.org."`}},
	}
	f.SetCredentials(keyID, "the-real-secret")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unknown zone" {
				f.SetCredentials(keyID, sentinel)
			}
			p := dnsprovider.WithRetry(provider(t, config()), dnsprovider.RetryPolicy{BaseDelay: time.Millisecond})
			f.ResetStats()
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
			if n := f.Stats().Requests; n != 1 {
				t.Errorf("%d API requests, want 1", n)
			}
		})
	}
}

func TestThrottlingIsTransient(t *testing.T) {
	f, _ := fake(t, "example.com.")
	p := provider(t, config())
	for _, code := range []string{"Throttling", "PriorRequestNotComplete", "ServiceUnavailable"} {
		f.FailNext(1, code)
		_, err := p.AppendRecords(context.Background(), "example.com", []libdns.Record{txt("x", "v")})
		var se *dnsprovider.StatusError
		if !errors.As(err, &se) || se.Code != code || !dnsprovider.IsTransientAPIError(err) {
			t.Fatalf("%s: err = %v, want a transient StatusError", code, err)
		}
	}
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, "example.com.")
	f.SetFaults(apifake.Faults{Rate: 0.3, LostRate: 0.05, Seed: 42})
	p := dnsprovider.WithRetry(provider(t, config()), dnsprovider.RetryPolicy{
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
	p := dnsprovider.Guard(provider(t, config()), "example.com")
	_, err := p.AppendRecords(context.Background(), "evil.com.", []libdns.Record{txt("_acme-challenge", "v")})
	if !errors.Is(err, dnsprovider.ErrZoneNotAllowed) {
		t.Fatalf("err = %v", err)
	}
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("the API received %d requests for a refused write", n)
	}
}

func TestCredentialsNeverAppearInLogsErrorsOrFormattedValues(t *testing.T) {
	f, _ := fake(t, "example.com.")
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config()
	cfg.Logger = logger
	var texts []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		texts = append(texts, fmt.Sprintf(verb, cfg))
	}
	inner := provider(t, cfg)
	p := dnsprovider.Audit(dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), logger)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		texts = append(texts, fmt.Sprintf(verb, inner), fmt.Sprintf(verb, p))
	}
	logger.Info("provider", "p", inner, "cfg", cfg)
	ctx := context.Background()
	for _, secret := range []string{sentinel, "another-secret"} {
		f.SetCredentials(keyID, secret)
		if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
		if _, err := p.DeleteRecords(ctx, "example.com", []libdns.Record{txt("x", "v")}); err != nil {
			texts = append(texts, err.Error())
		}
	}
	slog.New(slog.NewTextHandler(&logs, nil)).Info("text", "cfg", cfg)
	texts = append(texts, logs.String())
	for _, want := range []string{`"msg":"dns change"`, "SignatureDoesNotMatch", "applying Route53 record set change"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the test did not exercise %q: %s", want, logs.String())
		}
	}
	for _, s := range texts {
		for _, secret := range []string{sentinel, session} {
			if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
				t.Fatalf("a secret appears in %q", s)
			}
		}
	}
}
