package tlsauto

import (
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	_ "github.com/certfleet/certfleet/dnsprovider/cloudflare"
	_ "github.com/certfleet/certfleet/dnsprovider/route53"
	"github.com/certfleet/certfleet/internal/secretenv"
)

func TestConfigFromEnvReadsDNS01Settings(t *testing.T) {
	env := map[string]string{
		EnvDNSProvider:      "envtest",
		EnvStorage:          t.TempDir(),
		EnvPropagationCheck: "ANY",
		EnvPropagationDelay: "2s",
		EnvDNSPort:          "5353",
	}
	cfg, closer, err := configFromEnv(secretenv.Map(env), []string{"example.com"})
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if cfg.PropagationCheck != dnsprovider.PropagationAny || cfg.PropagationDelay != 2*time.Second || cfg.DNSPort != 5353 {
		t.Fatalf("DNS-01 settings not read: check %q, delay %v, port %d", cfg.PropagationCheck, cfg.PropagationDelay, cfg.DNSPort)
	}
}

func TestConfigFromEnvRejectsBadDNS01AndProviderSettings(t *testing.T) {
	const sentinel = "SENTINEL/secret/0123456789abcdefghijkl"
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
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
			_, closer, err := configFromEnv(secretenv.Map(tt.env), []string{"example.com"})
			if closer != nil {
				closer.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}
