package dnsprovider_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
)

// acmeDNS is a third-party provider as code outside certfleet would write
// it: its own package, its own settings, registered under its own name.
type acmeDNS struct {
	endpoint string
	token    string
}

func (p *acmeDNS) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("acmedns: not a real API")
}

func (p *acmeDNS) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("acmedns: not a real API")
}

// acmeDNSFromEnv reads ACMEDNS_ENDPOINT and the secret ACMEDNS_TOKEN (or
// ACMEDNS_TOKEN_FILE).
func acmeDNSFromEnv(getenv func(string) string) (dnsprovider.Provider, error) {
	token, err := dnsprovider.LookupEnv(getenv, "ACMEDNS_TOKEN")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("ACMEDNS_TOKEN is not set: set it (or ACMEDNS_TOKEN_FILE) to the API token")
	}
	return &acmeDNS{endpoint: getenv("ACMEDNS_ENDPOINT"), token: token}, nil
}

func init() {
	dnsprovider.Register("acme-dns-external", acmeDNSFromEnv)
}

func TestProviderOfAnotherModuleRegistersAndBuildsFromEnv(t *testing.T) {
	t.Setenv("ACMEDNS_ENDPOINT", "https://dns.example.net")
	t.Setenv("ACMEDNS_TOKEN", "sentinel-token-env")
	p, err := dnsprovider.FromEnv("ACME-DNS-External")
	if err != nil {
		t.Fatal(err)
	}
	a, ok := p.(*acmeDNS)
	if !ok || a.endpoint != "https://dns.example.net" || a.token != "sentinel-token-env" {
		t.Fatalf("FromEnv built %#v", p)
	}
}

func TestProviderOfAnotherModuleReadsSecretFileThroughGetenv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("sentinel-token-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ACMEDNS_ENDPOINT": "https://dns.example.net", "ACMEDNS_TOKEN_FILE": file}
	getenv := func(name string) string { return env[name] }
	p, err := dnsprovider.FromGetenv("acme-dns-external", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if a := p.(*acmeDNS); a.token != "sentinel-token-file" {
		t.Fatalf("token %q, want the file's contents without the newline", a.token)
	}

	env["ACMEDNS_TOKEN"] = "sentinel-token-both"
	_, err = dnsprovider.FromGetenv("acme-dns-external", getenv)
	if err == nil || !strings.Contains(err.Error(), "ACMEDNS_TOKEN and ACMEDNS_TOKEN_FILE are both set") {
		t.Fatalf("both set: %v, want an error naming both variables", err)
	}
	if strings.Contains(err.Error(), "sentinel") {
		t.Fatalf("error %q shows a secret", err)
	}

	delete(env, "ACMEDNS_TOKEN")
	delete(env, "ACMEDNS_TOKEN_FILE")
	_, err = dnsprovider.FromGetenv("acme-dns-external", getenv)
	if err == nil || !strings.Contains(err.Error(), "acme-dns-external: ACMEDNS_TOKEN is not set") {
		t.Fatalf("unset: %v, want the provider's error naming the variable", err)
	}
}

func TestRegisteringAProviderNameTwiceIsReportedByFromEnv(t *testing.T) {
	dnsprovider.Register("acme-dns-twice", acmeDNSFromEnv)
	dnsprovider.Register("ACME-DNS-Twice", acmeDNSFromEnv)
	_, err := dnsprovider.FromGetenv("acme-dns-twice", func(string) string { return "x" })
	if err == nil || !strings.Contains(err.Error(), `provider "acme-dns-twice" is registered twice`) {
		t.Fatalf("FromGetenv after a duplicate Register: %v", err)
	}
}
