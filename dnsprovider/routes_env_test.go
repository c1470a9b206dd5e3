package dnsprovider_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
)

// accountDNS is a provider that remembers which zones were written through
// the account (token) it was built for.
type accountDNS struct{ token string }

var accounts struct {
	sync.Mutex
	built  int
	writes map[string][]string // token -> zones written
}

func (p *accountDNS) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	accounts.Lock()
	defer accounts.Unlock()
	accounts.writes[p.token] = append(accounts.writes[p.token], zone)
	return recs, nil
}

func (p *accountDNS) DeleteRecords(_ context.Context, _ string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, nil
}

func init() {
	accounts.writes = map[string][]string{}
	dnsprovider.Register("account-test", func(getenv func(string) string) (dnsprovider.Provider, error) {
		token, err := dnsprovider.LookupEnv(getenv, "ACCOUNT_TOKEN")
		if err != nil {
			return nil, err
		}
		if token == "" {
			return nil, errors.New("ACCOUNT_TOKEN is not set")
		}
		accounts.Lock()
		defer accounts.Unlock()
		accounts.built++
		return &accountDNS{token: token}, nil
	})
}

func TestRoutesFromEnvReadsEachProviderUnderItsPrefix(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "net-token")
	if err := os.WriteFile(secret, []byte("net-token-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ACCOUNT_TOKEN":          "default-token",
		"ORG_ACCOUNT_TOKEN":      "org-token",
		"NET_ACCOUNT_TOKEN_FILE": secret,
	}
	accounts.Lock()
	before := accounts.built
	accounts.Unlock()
	p, err := dnsprovider.RoutesFromEnv(" example.com=account-test, example.org = account-test:ORG_ ,example.net=account-test:NET_,sub.example.org.=ACCOUNT-TEST:ORG_,",
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, zone := range []string{"example.com.", "www.example.com.", "example.org.", "sub.example.org.", "example.net."} {
		if _, err := p.AppendRecords(context.Background(), zone, []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "v"}}); err != nil {
			t.Fatalf("append in %s: %v", zone, err)
		}
	}
	accounts.Lock()
	defer accounts.Unlock()
	if n := accounts.built - before; n != 3 {
		t.Errorf("%d providers built, want 3 (routes with the same provider and prefix share one)", n)
	}
	want := map[string]string{
		"default-token":       "example.com. www.example.com.",
		"org-token":           "example.org. sub.example.org.",
		"net-token-from-file": "example.net.",
	}
	for token, zones := range want {
		if got := strings.Join(accounts.writes[token], " "); got != zones {
			t.Errorf("account %s wrote in %q, want %q", token, got, zones)
		}
	}
}

func TestRoutesFromEnvErrorsNameTheRoute(t *testing.T) {
	env := map[string]string{"ACCOUNT_TOKEN": "t", "ORG_ACCOUNT_TOKEN": "sentinel-secret", "ORG_ACCOUNT_TOKEN_FILE": "/x"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		value string
		want  []string
	}{
		{"", []string{"no routes"}},
		{" , ", []string{"no routes"}},
		{"example.com", []string{`route 1 ("example.com"): want zone=provider`}},
		{"example.com=", []string{`route 1 ("example.com="): want zone=provider`}},
		{"example.com=account-test:ORG-", []string{`variable prefix "ORG-" is not letters`}},
		{"example.com=account-test:", []string{`variable prefix "" is not letters`}},
		{"example.com=account-test,EXAMPLE.com.=account-test", []string{`route 2 ("EXAMPLE.com.=account-test"): zone example.com has a route already`}},
		{"example.com=nosuch", []string{`route 1 ("example.com=nosuch")`, `unknown DNS provider "nosuch"`}},
		{"a.test=account-test:NONE_", []string{"ACCOUNT_TOKEN is not set", "read with the prefix NONE_"}},
		{"a.test=account-test:ORG_", []string{"ACCOUNT_TOKEN and ACCOUNT_TOKEN_FILE are both set", "read with the prefix ORG_"}},
		{"*.test=account-test", []string{`"*.test" is not a zone name`}},
		{"a.test=nosuch,b.test=account-test:NONE_", []string{"route 1", "route 2"}}, // every problem at once
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			p, err := dnsprovider.RoutesFromEnv(tt.value, getenv)
			if err == nil {
				t.Fatalf("RoutesFromEnv(%q) = %v, want an error", tt.value, dnsprovider.Name(p))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "sentinel-secret") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}
