package dnsprovider

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProviderPackagesDoNotLinkTheSolver holds the package split: a program
// that only builds providers (a CLI, a third-party solver) links neither
// the DNS-01 solver nor its DNS and ACME libraries.
func TestProviderPackagesDoNotLinkTheSolver(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to list dependencies with: %v", err)
	}
	for name, pkg := range map[string]string{
		"dnsprovider": ".", "dnsprovider/cloudflare": "./cloudflare", "dnsprovider/route53": "./route53",
		"dnsprovider/googleclouddns": "./googleclouddns", "dnsprovider/azure": "./azure",
	} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, heavy := range []string{
				"github.com/mholt/acmez", "github.com/miekg/dns",
				"github.com/certfleet/certfleet/dnsprovider/dns01",
			} {
				if dep == heavy || strings.HasPrefix(dep, heavy+"/") {
					t.Errorf("importing %s links %s", name, dep)
				}
			}
		}
	}
}
