package tlsauto

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

// nopDNS satisfies dnsprovider.Provider for tests that never reach the CA.
type nopDNS struct{}

func (nopDNS) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, nil
}
func (nopDNS) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, nil
}

func validConfig() Config {
	return Config{
		Domains: []string{"example.com", "*.example.com"},
		Email:   "ops@example.com",
		DNS:     nopDNS{},
		Storage: nil,
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // in the error: the field and a hint
	}{
		{"no domains", func(c *Config) { c.Domains = nil }, "Domains: at least one"},
		{"empty domain", func(c *Config) { c.Domains = []string{""} }, "Domains[0]"},
		{"space in domain", func(c *Config) { c.Domains = []string{"exa mple.com"} }, "Domains[0]"},
		{"surrounding space", func(c *Config) { c.Domains = []string{" example.com"} }, "white space"},
		{"wildcard not leftmost", func(c *Config) { c.Domains = []string{"www.*.example.com"} }, "wildcard must be the whole leftmost label"},
		{"partial wildcard label", func(c *Config) { c.Domains = []string{"w*.example.com"} }, "wildcard must be the whole leftmost label"},
		{"double wildcard", func(c *Config) { c.Domains = []string{"*.*.example.com"} }, "wildcard"},
		{"wildcard of a TLD", func(c *Config) { c.Domains = []string{"*.com"} }, "at least two labels"},
		{"IPv4 literal", func(c *Config) { c.Domains = []string{"192.0.2.1"} }, "IP addresses"},
		{"IPv6 literal", func(c *Config) { c.Domains = []string{"2001:db8::1"} }, "IP addresses"},
		{"single label", func(c *Config) { c.Domains = []string{"localhost"} }, "single-label"},
		{"empty label", func(c *Config) { c.Domains = []string{"a..example.com"} }, "empty label"},
		{"leading hyphen", func(c *Config) { c.Domains = []string{"-a.example.com"} }, "hyphen"},
		{"underscore", func(c *Config) { c.Domains = []string{"a_b.example.com"} }, "only letters"},
		{"label too long", func(c *Config) { c.Domains = []string{strings.Repeat("a", 64) + ".example.com"} }, "63"},
		{"invalid IDN", func(c *Config) { c.Domains = []string{"xn--zz.example.com"} }, "Domains[0]"},
		{"invalid UTF-8", func(c *Config) { c.Domains = []string{"b\xffcher.example"} }, "UTF-8"},
		{"numeric TLD", func(c *Config) { c.Domains = []string{"example.123"} }, "all digits"},
		{"short IPv4 form", func(c *Config) { c.Domains = []string{"127.1"} }, "IPv4"},
		{"hex IPv4 form", func(c *Config) { c.Domains = []string{"0x7f.0.0.1"} }, "IPv4"},
		{"leading-zero IPv4", func(c *Config) { c.Domains = []string{"1.2.3.04"} }, "IPv4"},
		{"ideographic dot duplicate", func(c *Config) { c.Domains = []string{"example.com", "example.com\u3002"} }, "list each name once"},
		{"duplicate", func(c *Config) { c.Domains = []string{"Example.com", "example.com."} }, "list each name once"},
		{"check interval too short", func(c *Config) { c.RenewalCheckInterval = time.Nanosecond }, "RenewalCheckInterval: 1ns is shorter than the minimum"},
		{"check interval too long", func(c *Config) { c.RenewalCheckInterval = 1000000 * time.Hour }, "RenewalCheckInterval: 1000000h0m0s is longer than the maximum"},
		{"sync interval too short", func(c *Config) { c.SyncInterval = time.Millisecond }, "SyncInterval"},
		{"solver lease too long", func(c *Config) { c.SolverLease = 2 * time.Hour }, "SolverLease"},
		{"propagation timeout too short", func(c *Config) { c.PropagationTimeout = time.Millisecond }, "PropagationTimeout"},
		{"propagation delay too long", func(c *Config) { c.PropagationDelay = 2 * time.Hour }, "PropagationDelay"},
		{"missing email", func(c *Config) { c.Email = "" }, "Email: required"},
		{"bad email", func(c *Config) { c.Email = "not-an-email" }, "Email:"},
		{"email with name", func(c *Config) { c.Email = "Ops <ops@example.com>" }, "Email:"},
		{"malformed CA URL", func(c *Config) { c.CA = "https://[::1" }, "CA:"},
		{"http CA", func(c *Config) { c.CA = "http://acme.example.com/dir" }, "CA: \"http://acme.example.com/dir\" must be an https://"},
		{"CA without host", func(c *Config) { c.CA = "https:///dir" }, "CA:"},
		{"nil DNS provider", func(c *Config) { c.DNS = nil }, "DNS: a DNS provider is required"},
		{"unknown key type", func(c *Config) { c.KeyType = "ed448" }, "KeyType: unknown key type"},
		{"bad resolver", func(c *Config) { c.Resolvers = []string{"not a host"} }, "Resolvers[0]"},
		{"bad resolver port", func(c *Config) { c.Resolvers = []string{"127.0.0.1:99999"} }, "Resolvers[0]"},
		{"profile with space", func(c *Config) { c.Profile = "short lived" }, "Profile:"},
		{"EAB without key", func(c *Config) { c.EAB = &EAB{KeyID: "kid"} }, "EAB: both"},
		{"EAB key not base64url", func(c *Config) { c.EAB = &EAB{KeyID: "kid", MACKey: "not base64!"} }, "EAB: MACKey is not base64url"},
		{"negative check interval", func(c *Config) { c.RenewalCheckInterval = -1 }, "RenewalCheckInterval"},
		{"renewal ratio 1", func(c *Config) { c.RenewalWindowRatio = 1 }, "RenewalWindowRatio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.change(&cfg)
			m, err := New(cfg)
			if err == nil {
				m.Close()
				t.Fatalf("New accepted %s", tt.name)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field == "" || !strings.Contains(err.Error(), ce.Field+": ") {
				t.Fatalf("error %q is not a *ConfigError naming its field", err)
			}
		})
	}
}

func TestNewNormalizesDomains(t *testing.T) {
	cfg := validConfig()
	cfg.Storage = nil
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	cfg.Domains = []string{"Example.COM.", "*.Example.com", "bücher.example", "www\u3002example\uff0ecom\u3002"}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := strings.Join(m.Domains(), " ")
	if want := "example.com *.example.com xn--bcher-kva.example www.example.com"; got != want {
		t.Fatalf("Domains() = %q, want %q", got, want)
	}
}

func TestEABNeverShowsMACKey(t *testing.T) {
	const sentinel = "c2VudGluZWwtbWFjLWtleQ"
	b := &EAB{KeyID: "kid", MACKey: sentinel}
	for _, s := range []string{
		fmt.Sprintf("%v", b), fmt.Sprintf("%+v", b), fmt.Sprintf("%#v", b), b.String(),
		fmt.Sprintf("%v", Config{EAB: b}), fmt.Sprintf("%+v", Config{EAB: b}),
	} {
		if strings.Contains(s, sentinel) {
			t.Fatalf("MAC key shown: %s", s)
		}
	}
}
