package route53_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/internal/providertest"
	"github.com/certfleet/certfleet/dnsprovider/route53"
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
	f, mem := providertest.Start(t, apifake.NewRoute53, zones...)
	t.Setenv("AWS_ENDPOINT_URL_ROUTE_53", f.URL())
	return f, mem
}

// config returns a Config with static credentials and no SDK retries.
func config() route53.Config {
	return route53.Config{AccessKeyID: keyID, SecretAccessKey: sentinel, SessionToken: session, MaxAttempts: 1}
}

func provider(t *testing.T, cfg route53.Config) dnsprovider.Provider {
	t.Helper()
	return providertest.New(t, route53.New, cfg)
}

func TestFromEnvRejectsBadSettingsWithClearErrorsAndNoExit(t *testing.T) {
	isolateAWS(t)
	// Env goes through getenv; Process is the process environment, which
	// the AWS SDK reads.
	providertest.CheckFromEnvRejects(t, route53.FromEnv, []providertest.EnvCase{
		{Name: "key id without secret", Env: map[string]string{"AWS_ACCESS_KEY_ID": keyID}, Want: "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"},
		{Name: "secret without key id", Env: map[string]string{"AWS_SECRET_ACCESS_KEY": sentinel}, Want: "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"},
		{Name: "session token alone", Env: map[string]string{"AWS_SESSION_TOKEN": session}, Want: "AWS_SESSION_TOKEN is set without"},
		{Name: "secret with newline", Env: map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": sentinel + "\n"}, Want: "AWS_SECRET_ACCESS_KEY contains whitespace"},
		{Name: "malformed key id", Env: map[string]string{"AWS_ACCESS_KEY_ID": "AKIA-" + sentinel, "AWS_SECRET_ACCESS_KEY": sentinel}, Want: "AWS_ACCESS_KEY_ID is not an AWS access key id"},
		{Name: "both NAME and NAME_FILE", Env: map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": sentinel, "AWS_SECRET_ACCESS_KEY_FILE": providertest.WriteFile(t, sentinel)}, Want: "both set"},
		{Name: "unreadable file", Env: map[string]string{"AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY_FILE": filepath.Join(t.TempDir(), "missing")}, Want: "AWS_SECRET_ACCESS_KEY_FILE: reading"},
		{Name: "bad region", Env: map[string]string{"AWS_REGION": "us east 1"}, Want: `AWS_REGION: "us east 1" is not an AWS region name`},
		{Name: "bad hosted zone id", Env: map[string]string{"CERTFLEET_ROUTE53_HOSTED_ZONE_ID": "z-12 3"}, Want: "is not a Route 53 hosted zone id"},
		{Name: "bad wait flag", Env: map[string]string{"CERTFLEET_ROUTE53_WAIT_FOR_SYNC": "maybe"}, Want: "CERTFLEET_ROUTE53_WAIT_FOR_SYNC"},
		{Name: "endpoint not a URL", Env: map[string]string{"AWS_ENDPOINT_URL_ROUTE_53": "ftp://route53.local"}, Want: "AWS_ENDPOINT_URL_ROUTE_53: \"ftp://route53.local\" must be an http:// or https:// URL"},
		{Name: "endpoint only in getenv", Env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, Want: "reads it from the process environment only"},
		{Name: "missing profile", Env: map[string]string{"AWS_PROFILE": "nosuch"}, Want: "failed to get shared config profile, nosuch"},
		{Name: "bad endpoint in process env", Process: map[string]string{"AWS_ENDPOINT_URL_ROUTE_53": "http://"}, Want: "the Route 53 endpoint"},
		{Name: "bad region in process env", Process: map[string]string{"AWS_REGION": "Not A Region"}, Want: "the region of the AWS chain"},
		{Name: "bad AWS_MAX_ATTEMPTS", Process: map[string]string{"AWS_MAX_ATTEMPTS": "abc"}, Want: "loading the AWS configuration"},
		{Name: "missing CA bundle", Process: map[string]string{"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, Want: "loading the AWS configuration"},
		{Name: "defaults mode auto", Process: map[string]string{"AWS_DEFAULTS_MODE": "auto"}, Want: "choose standard, in-region or cross-region"},
	}, "SENTINEL")
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
	providertest.CheckRegistered[*route53.Provider](t, "route53", map[string]string{
		"AWS_ACCESS_KEY_ID_FILE": providertest.WriteFile(t, keyID+"\n"), "AWS_SECRET_ACCESS_KEY_FILE": providertest.WriteFile(t, sentinel+"\n"),
	})
}

func TestAppendsListsAndDeletesTXTThroughTheAPI(t *testing.T) {
	f, mem := fake(t, "example.com.")
	f.SetCredentials(keyID, sentinel)
	p := provider(t, config())
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("New made %d API requests, want none", n)
	}
	// Appending a value that is there already must be idempotent: Route 53
	// refuses duplicate values in a record set.
	providertest.CheckRoundTrip(t, p, mem, "example.com.")
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
	if _, err := p.AppendRecords(context.Background(), "example.com", []libdns.Record{providertest.TXT("x", "v")}); err != nil {
		t.Fatal(err)
	}
	if got := providertest.Texts(t, mem, "example.com.", "x"); !slices.Equal(got, []string{"v"}) {
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
			_, err := p.AppendRecords(context.Background(), tc.zone, []libdns.Record{providertest.TXT("x", "v")})
			providertest.CheckPermanent(t, err, tc.want...)
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
		_, err := p.AppendRecords(context.Background(), "example.com", []libdns.Record{providertest.TXT("x", "v")})
		var se *dnsprovider.StatusError
		if !errors.As(err, &se) || se.Code != code || !dnsprovider.IsTransientAPIError(err) {
			t.Fatalf("%s: err = %v, want a transient StatusError", code, err)
		}
	}
}

func TestRetryCompletesEveryWriteDespiteFaults(t *testing.T) {
	f, mem := fake(t, "example.com.")
	providertest.CheckRetryThroughFaults(t, f, provider(t, config()), mem, "example.com.")
}

func TestGuardRefusesOutOfZoneWriteWithoutAPICall(t *testing.T) {
	f, _ := fake(t, "example.com.", "evil.com.")
	providertest.CheckGuardRefuses(t, f, provider(t, config()), "example.com", "evil.com.")
}

func TestCredentialsNeverAppearInLogsErrorsOrFormattedValues(t *testing.T) {
	f, _ := fake(t, "example.com.")
	leaks := providertest.NewLeaks()
	cfg := config()
	cfg.Logger = leaks.Logger
	leaks.Format(cfg)
	inner := provider(t, cfg)
	p := dnsprovider.Audit(dnsprovider.WithRetry(inner, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), leaks.Logger)
	leaks.Show(cfg, inner, p)
	for _, secret := range []string{sentinel, "another-secret"} {
		f.SetCredentials(keyID, secret)
		leaks.Write(p, "example.com")
	}
	leaks.Check(t, cfg, []string{`"msg":"dns change"`, "SignatureDoesNotMatch", "applying Route53 record set change"},
		sentinel, fmt.Sprintf("%x", sentinel), session, fmt.Sprintf("%x", session))
}
