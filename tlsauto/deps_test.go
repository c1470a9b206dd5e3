package tlsauto

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportingTlsautoLinksNoProviderOrBackendSDK holds the project's promise: a
// program pays only for what it uses. Providers and backends are linked in
// by importing their packages, never by importing tlsauto.
func TestImportingTlsautoLinksNoProviderOrBackendSDK(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to list dependencies with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{
			"github.com/aws/", "github.com/jackc/pgx", "github.com/redis/go-redis",
			"github.com/libdns/cloudflare", "github.com/libdns/route53",
			"github.com/certfleet/certfleet/dnsprovider/googleclouddns", "github.com/certfleet/certfleet/dnsprovider/azure",
			"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi", "github.com/letsencrypt/pebble",
			"github.com/certfleet/certfleet/internal/testacme",
			"github.com/certfleet/certfleet/dnsprovider/rfc2136", "github.com/libdns/rfc2136",
		} {
			if strings.HasPrefix(pkg, heavy) {
				t.Errorf("importing tlsauto links %s", pkg)
			}
		}
	}
}
