package all_test

import (
	"slices"
	"testing"

	"github.com/certfleet/certfleet/dnsprovider"
	_ "github.com/certfleet/certfleet/dnsprovider/all"
)

func TestAllRegistersEveryBuiltInProvider(t *testing.T) {
	names := dnsprovider.Names()
	for _, want := range []string{"azure", "cloudflare", "googleclouddns", "rfc2136", "route53"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, missing %q", names, want)
		}
	}
}
