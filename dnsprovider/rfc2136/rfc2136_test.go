package rfc2136_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
	"github.com/certfleet/certfleet/internal/secretenv"
)

// sentinel is a valid base64 secret that must never appear in any output.
const sentinel = "U0VOVElORUwtc2VjcmV0LXNlbnRpbmVsLTEyMzQ1Njc4OTA="

func TestNewRejectsBadSettingsNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  rfc2136.Config
		want string
	}{
		{"no nameserver", rfc2136.Config{}, "Nameserver: the nameserver is required"},
		{"no port", rfc2136.Config{Nameserver: "192.0.2.53"}, "the port is required"},
		{"bad port", rfc2136.Config{Nameserver: "192.0.2.53:99999"}, "the port must be a number"},
		{"no host", rfc2136.Config{Nameserver: ":53"}, "has no host"},
		{"unknown algorithm", rfc2136.Config{Nameserver: "ns:53", TSIGKey: "k", TSIGSecret: sentinel, TSIGAlgorithm: "hmac-sha3"}, `TSIGAlgorithm "hmac-sha3" is not a TSIG algorithm`},
		{"md5", rfc2136.Config{Nameserver: "ns:53", TSIGKey: "k", TSIGSecret: sentinel, TSIGAlgorithm: "HMAC-MD5.SIG-ALG.REG.INT"}, "hmac-md5 is broken"},
		{"secret not base64", rfc2136.Config{Nameserver: "ns:53", TSIGKey: "k", TSIGSecret: "not base64!"}, "TSIGSecret: is not base64"},
		{"key clause as secret", rfc2136.Config{Nameserver: "ns:53", TSIGKey: "k", TSIGSecret: `key "k" { secret "abc="; };`}, "whole BIND key clause"},
		{"secret without key", rfc2136.Config{Nameserver: "ns:53", TSIGSecret: sentinel}, "TSIGSecret is set but TSIGKey is not"},
		{"key without secret", rfc2136.Config{Nameserver: "ns:53", TSIGKey: "k"}, "TSIGKey is set but TSIGSecret is not"},
		{"bad key name", rfc2136.Config{Nameserver: "ns:53", TSIGKey: "a key", TSIGSecret: sentinel}, `TSIGKey "a key" is not a key name`},
		{"negative timeout", rfc2136.Config{Nameserver: "ns:53", Timeout: -time.Second}, "Timeout is -1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rfc2136.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%v) = %v, want an error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestNewAcceptsTheUsualForms(t *testing.T) {
	for _, cfg := range []rfc2136.Config{
		{Nameserver: "192.0.2.53:53", TSIGKey: "certfleet", TSIGSecret: sentinel},
		{Nameserver: "[2001:db8::53]:5353", TSIGKey: "Update-Key.example.com.", TSIGSecret: sentinel, TSIGAlgorithm: "HMAC-SHA512."},
		{Nameserver: "ns1.example.com:53"}, // unsigned
	} {
		if _, err := rfc2136.New(cfg); err != nil {
			t.Errorf("New(%v): %v", cfg, err)
		}
	}
}

func TestFromEnvNamesTheVariable(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(sentinel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" means success
	}{
		{"unset", map[string]string{}, "RFC2136_NAMESERVER is not set"},
		{"no port", map[string]string{"RFC2136_NAMESERVER": "192.0.2.53"}, "RFC2136_NAMESERVER: \"192.0.2.53\" is not host:port"},
		{"unknown algorithm", map[string]string{"RFC2136_NAMESERVER": "ns:53", "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET": sentinel, "RFC2136_TSIG_ALGORITHM": "sha256"}, "RFC2136_TSIG_ALGORITHM \"sha256\" is not a TSIG algorithm"},
		{"secret not base64", map[string]string{"RFC2136_NAMESERVER": "ns:53", "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET": "%%%"}, "RFC2136_TSIG_SECRET: is not base64"},
		{"secret without key", map[string]string{"RFC2136_NAMESERVER": "ns:53", "RFC2136_TSIG_SECRET": sentinel}, "RFC2136_TSIG_SECRET is set but RFC2136_TSIG_KEY is not"},
		{"bad timeout", map[string]string{"RFC2136_NAMESERVER": "ns:53", "RFC2136_DNS_TIMEOUT": "soon"}, "RFC2136_DNS_TIMEOUT=\"soon\""},
		{"secret and file", map[string]string{"RFC2136_NAMESERVER": "ns:53", "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET": sentinel, "RFC2136_TSIG_SECRET_FILE": secretFile}, "RFC2136_TSIG_SECRET"},
		{"secret file", map[string]string{"RFC2136_NAMESERVER": "ns:53", "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET_FILE": secretFile, "RFC2136_DNS_TIMEOUT": "30"}, ""},
		{"all set", map[string]string{"RFC2136_NAMESERVER": "192.0.2.53:53", "RFC2136_TSIG_KEY": "k", "RFC2136_TSIG_SECRET": sentinel, "RFC2136_TSIG_ALGORITHM": "hmac-sha384."}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := rfc2136.FromEnv(secretenv.Map(tc.env))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("FromEnv: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("FromEnv = %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), sentinel) {
				t.Errorf("error shows the secret: %v", err)
			}
			if p != nil && strings.Contains(fmt.Sprint(p), sentinel) {
				t.Errorf("provider shows the secret: %v", p)
			}
		})
	}
}

func TestRegisteredAsRFC2136(t *testing.T) {
	p, err := dnsprovider.FromGetenv("rfc2136", secretenv.Map(map[string]string{"RFC2136_NAMESERVER": "192.0.2.53:53"}))
	if err != nil {
		t.Fatal(err)
	}
	if dnsprovider.Name(p) != "rfc2136" {
		t.Errorf("Name = %q", dnsprovider.Name(p))
	}
	_, err = dnsprovider.FromGetenv("rfc2136", secretenv.Map(nil))
	if err == nil || !strings.Contains(err.Error(), "dnsprovider: rfc2136: RFC2136_NAMESERVER") {
		t.Errorf("FromGetenv without settings = %v", err)
	}
}

func TestSecretNeverFormatted(t *testing.T) {
	cfg := rfc2136.Config{Nameserver: "192.0.2.53:53", TSIGKey: "certfleet", TSIGSecret: sentinel}
	p, err := rfc2136.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	logger.Info("config", "cfg", cfg, "provider", p)
	logger.Info("config", slog.Any("cfg", &cfg))
	for _, v := range []any{cfg, &cfg, p} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, sentinel) || strings.Contains(out, "SENTINEL") {
				t.Errorf("%s of %T shows the secret: %s", verb, v, out)
			}
		}
	}
	if strings.Contains(logs.String(), sentinel) {
		t.Errorf("slog shows the secret: %s", logs.String())
	}
	_, err = rfc2136.New(rfc2136.Config{Nameserver: "ns", TSIGKey: "k", TSIGSecret: sentinel, TSIGAlgorithm: "bad"})
	if err == nil || strings.Contains(err.Error(), sentinel) {
		t.Errorf("validation error shows the secret or is nil: %v", err)
	}
	_, err = rfc2136.New(rfc2136.Config{Nameserver: "ns:53", TSIGKey: "k", TSIGSecret: sentinel + "!"})
	if err == nil || strings.Contains(err.Error(), sentinel) {
		t.Errorf("base64 error shows the secret or is nil: %v", err)
	}
	if errors.Unwrap(err) != nil && strings.Contains(errors.Unwrap(err).Error(), sentinel) {
		t.Errorf("wrapped error shows the secret: %v", errors.Unwrap(err))
	}
}

// TestLinksNeitherTheSolverNorACME holds the package split: the provider
// speaks DNS (miekg/dns) but links neither the DNS-01 solver nor acmez.
func TestLinksNeitherTheSolverNorACME(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to list dependencies with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, heavy := range []string{"github.com/mholt/acmez", "github.com/caddyserver/certmagic", "github.com/certfleet/certfleet/dnsprovider/dns01", "github.com/libdns/rfc2136"} {
			if dep == heavy || strings.HasPrefix(dep, heavy+"/") {
				t.Errorf("importing dnsprovider/rfc2136 links %s", dep)
			}
		}
	}
}
