package dnsprovider

import (
	"errors"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/secretenv"
)

func TestFromGetenvErrorsNameTheFix(t *testing.T) {
	boom := errors.New("TEST_TOKEN is not set")
	Register("test-fails", func(func(string) string) (Provider, error) { return nil, boom })
	Register("test-returns-nil", func(func(string) string) (Provider, error) { return nil, nil })
	Register("test-twice", func(func(string) string) (Provider, error) { return newScripted(t), nil })
	Register("test-twice", func(func(string) string) (Provider, error) { return newScripted(t), nil })
	Register("test-nil-func", nil)
	cases := []struct {
		name string
		want []string
		is   error
	}{
		{"cloudflare", []string{`import _ "github.com/certfleet/certfleet/dnsprovider/cloudflare"`, "dnsprovider/all"}, nil},
		{"Route53", []string{`import _ "github.com/certfleet/certfleet/dnsprovider/route53"`}, nil},
		{"nosuch", []string{`unknown DNS provider "nosuch"`, "test-fails", `dnsprovider.Register("nosuch"`}, nil},
		{"", []string{"no DNS provider name given"}, nil},
		{"test-fails", []string{"test-fails: TEST_TOKEN is not set"}, boom},
		{"test-returns-nil", []string{"returned no provider and no error"}, nil},
		{"test-twice", []string{"registered twice"}, nil},
		{"test-nil-func", []string{`dnsprovider.Register("test-nil-func") was called with a nil function`}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := FromGetenv(tc.name, secretenv.Map(nil))
			if err == nil {
				t.Fatalf("FromGetenv(%q) = %v, want an error", tc.name, p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
		})
	}
}

func TestNamesListsRegisteredProvidersSorted(t *testing.T) {
	Register("test-names-b", func(func(string) string) (Provider, error) { return newScripted(t), nil })
	Register("test-names-a", func(func(string) string) (Provider, error) { return newScripted(t), nil })
	names := Names()
	a, b := -1, -1
	for i, n := range names {
		switch n {
		case "test-names-a":
			a = i
		case "test-names-b":
			b = i
		}
	}
	if a < 0 || b < 0 || a > b {
		t.Fatalf("Names() = %v", names)
	}
}
