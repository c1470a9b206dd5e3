package tlsauto

import (
	"bytes"
	"context"
	"encoding/base64"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	_ "github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	_ "github.com/certfleet/certfleet/dnsprovider/route53"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
	_ "github.com/certfleet/certfleet/storage/postgres"
)

func init() {
	dnsprovider.Register("envtest", func(func(string) string) (dnsprovider.Provider, error) { return nopDNS{}, nil })
}

func TestConfigFromEnv(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, encrypt.KeySize))
	env := map[string]string{
		EnvEmail:              "ops@example.com",
		EnvDomains:            "example.com, *.example.com",
		EnvCA:                 "letsencrypt-staging",
		EnvDNSProvider:        "envtest",
		EnvStorage:            t.TempDir(),
		EnvStorageKeys:        key,
		EnvResolvers:          "1.1.1.1,9.9.9.9:53",
		EnvPropagationTimeout: "90s",
		EnvKeyType:            "RSA-2048",
		EnvProfile:            "shortlived",
		EnvPropagationCheck:   "ANY",
		EnvPropagationDelay:   "2s",
		EnvDNSPort:            "5353",
	}
	cfg, closer, err := configFromEnv(context.Background(), secretenv.Map(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if got := strings.Join(cfg.Domains, " "); got != "example.com *.example.com" {
		t.Errorf("Domains = %q", got)
	}
	if cfg.CA != LetsEncryptStaging || cfg.KeyType != KeyRSA2048 || cfg.Profile != "shortlived" || cfg.PropagationTimeout.Seconds() != 90 {
		t.Errorf("settings not read: %+v", cfg)
	}
	if cfg.PropagationCheck != dns01.PropagationAny || cfg.PropagationDelay != 2*time.Second || cfg.DNSPort != 5353 {
		t.Errorf("DNS-01 settings not read: check %q, delay %v, port %d", cfg.PropagationCheck, cfg.PropagationDelay, cfg.DNSPort)
	}
	// Encrypted: what the Config's storage stores, the storage it wraps holds
	// sealed.
	wrapper, ok := cfg.Storage.(interface{ Unwrap() storage.Storage })
	if !ok {
		t.Fatalf("storage %v wraps nothing although %s is set", cfg.Storage, EnvStorageKeys)
	}
	ctx := context.Background()
	if err := cfg.Storage.Store(ctx, "probe", []byte("plain text")); err != nil {
		t.Fatal(err)
	}
	if raw, err := wrapper.Unwrap().Load(ctx, "probe"); err != nil || bytes.Contains(raw, []byte("plain text")) {
		t.Errorf("storage is not encrypted although %s is set: the wrapped storage holds %q (%v)", EnvStorageKeys, raw, err)
	}
}

func TestConfigFromEnvErrors(t *testing.T) {
	const sentinel = "SENTINEL-do-not-print"
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no provider", map[string]string{}, EnvDNSProvider + ": not set"},
		{"provider and routes", map[string]string{EnvDNSProvider: "envtest", EnvDNSRoutes: "example.com=envtest"}, EnvDNSProvider + " and " + EnvDNSRoutes + " are both set"},
		{"bad routes", map[string]string{EnvDNSRoutes: "example.com=envtest:BAD-"}, EnvDNSRoutes + `: route 1 ("example.com=envtest:BAD-")`},
		{"unknown provider", map[string]string{EnvDNSProvider: "nosuch"}, "nosuch"},
		{"bad duration", map[string]string{EnvDNSProvider: "envtest", EnvPropagationTimeout: "soon"}, EnvPropagationTimeout},
		{"bad key type", map[string]string{EnvDNSProvider: "envtest", EnvKeyType: "dsa"}, EnvKeyType},
		{"value and file", map[string]string{EnvDNSProvider: "envtest", EnvEABMACKey: sentinel, EnvEABMACKey + "_FILE": "/nonexistent"}, "both set"},
		{"unreadable file", map[string]string{EnvDNSProvider: "envtest", EnvEABMACKey + "_FILE": "/nonexistent/" + sentinel[:8]}, EnvEABMACKey + "_FILE"},
		{"bad storage keys", map[string]string{EnvDNSProvider: "envtest", EnvStorageKeys: sentinel}, EnvStorageKeys},
		{"bad CA roots", map[string]string{EnvDNSProvider: "envtest", EnvCARoots: "/nonexistent.pem"}, EnvCARoots},
		{"unknown check", map[string]string{EnvDNSProvider: "envtest", EnvPropagationCheck: "most"}, EnvPropagationCheck + ": unknown propagation check"},
		{"bad delay", map[string]string{EnvDNSProvider: "envtest", EnvPropagationDelay: "later"}, EnvPropagationDelay},
		{"bad port", map[string]string{EnvDNSProvider: "envtest", EnvDNSPort: "dns"}, EnvDNSPort + `: "dns" is not a port number`},
		{"port out of range", map[string]string{EnvDNSProvider: "envtest", EnvDNSPort: "0"}, EnvDNSPort},
		{"cloudflare without token", map[string]string{EnvDNSProvider: "cloudflare"}, "CLOUDFLARE_API_TOKEN is not set"},
		{"route53 secret without key id", map[string]string{EnvDNSProvider: "route53", "AWS_SECRET_ACCESS_KEY": sentinel}, "AWS_ACCESS_KEY_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env[EnvStorage] = t.TempDir()
			_, closer, err := configFromEnv(context.Background(), secretenv.Map(tt.env), []string{"example.com"})
			if closer != nil {
				closer.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}

func TestNewFromEnvGivesUpOnUnreachableStorageWithinStartTimeout(t *testing.T) {
	// A server that accepts connections and never answers: the database
	// host is up, PostgreSQL on it is not.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	silent := ln.Addr().String()
	t.Setenv(EnvEmail, "ops@example.com")
	t.Setenv(EnvDNSProvider, "envtest")
	t.Setenv(EnvStorage, "postgres://postgres@"+silent+"/test?sslmode=disable")
	t.Setenv(EnvStartTimeout, " 1s ")

	done := make(chan error, 1)
	go func() {
		m, err := NewFromEnv("example.com")
		if m != nil {
			m.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), EnvStorage) {
			t.Fatalf("NewFromEnv = %v, want an error about %s", err, EnvStorage)
		}
	case <-time.After(time.Minute):
		t.Fatalf("NewFromEnv still waits for an unreachable PostgreSQL a minute after %s (1s)", EnvStartTimeout)
	}
}

func TestNewFromEnvNamesTheVariableOfARefusedSetting(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvPropagationDelay: "-5s"}, EnvPropagationDelay + ": -5s is negative"},
		{map[string]string{EnvRenewalCheck: "1ns"}, EnvRenewalCheck + ": 1ns is shorter than the minimum"},
		{map[string]string{EnvRenewalCheck: "1000000h"}, EnvRenewalCheck + ": 1000000h0m0s is longer than the maximum"},
		{map[string]string{EnvEmail: "nobody"}, EnvEmail + ": "},
		{map[string]string{EnvDomains: "a..example.com"}, EnvDomains + ": "},
	}
	for _, tt := range tests {
		env := map[string]string{EnvDNSProvider: "envtest", EnvEmail: "ops@example.com", EnvDomains: "example.com", EnvStorage: t.TempDir()}
		maps.Copy(env, tt.env)
		m, err := newFromEnv(context.Background(), secretenv.Map(env), nil)
		if m != nil {
			m.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one starting with %q", tt.env, err, tt.want)
		}
	}
}

func TestConfigFromEnvRoutesEachZoneToItsProvider(t *testing.T) {
	env := map[string]string{EnvEmail: "ops@example.com", EnvDomains: "example.com", EnvStorage: t.TempDir(),
		EnvDNSRoutes: "example.com=envtest, example.org=envtest:ORG_"}
	cfg, closer, err := configFromEnv(context.Background(), secretenv.Map(env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if closer != nil {
		defer closer.Close()
	}
	if name := dnsprovider.Name(cfg.DNS); !strings.HasPrefix(name, "route(example.com=") || !strings.Contains(name, ", example.org=") {
		t.Fatalf("DNS provider %q, want the routes", name)
	}
}

func TestConfigFromEnvReadsSeveralCAsInOrder(t *testing.T) {
	mac := base64.RawURLEncoding.EncodeToString([]byte("second-ca-mac-key"))
	env := map[string]string{EnvDNSProvider: "envtest", EnvEmail: "ops@example.com", EnvStorage: t.TempDir(),
		EnvCA: "letsencrypt, https://acme.example.net/dir", EnvEABKeyID + "_2": "kid-2", EnvEABMACKey + "_2": mac}
	cfg, closer, err := configFromEnv(context.Background(), secretenv.Map(env), []string{"example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if len(cfg.CAs) != 2 || cfg.CAs[0].URL != LetsEncrypt || cfg.CAs[1].URL != "https://acme.example.net/dir" || cfg.CA != "" {
		t.Fatalf("CAs %+v, CA %q: want Let's Encrypt then acme.example.net", cfg.CAs, cfg.CA)
	}
	if cfg.CAs[0].EAB != nil || cfg.CAs[1].EAB == nil || cfg.CAs[1].EAB.KeyID != "kid-2" {
		t.Fatalf("EAB per CA: %v, %v; want none, then kid-2", cfg.CAs[0].EAB, cfg.CAs[1].EAB)
	}
	cfg.DNS = nopDNS{}
	if _, err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	cfg.CA = LetsEncrypt
	if _, err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "CAs") {
		t.Fatalf("CA and CAs both set: %v, want an error naming CAs", err)
	}
}
