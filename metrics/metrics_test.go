package metrics_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// scrape gathers reg and returns each sample as name{label="v",…} → value
// (histograms by their sample count).
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := f.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestScrapeReportsIssuanceRenewalFailureAndHandshakes(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	st, err := file.New(context.Background(), file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := tlsauto.New(tlsauto.Config{
		Domains: []string{"a.example.test"}, Email: "ops@example.test", CA: w.DirectoryURL(), CARoots: w.ACMERoots(),
		DNS: w.Provider(), Storage: st, Resolvers: []string{w.DNSAddr()}, DNSPort: w.DNSPort(),
		ChainRoots: w.Roots(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(m))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := m.Start(ctx); err != nil { // issuance
		t.Fatal(err)
	}
	if err := m.Renew(ctx, "a.example.test"); err != nil { // renewal
		t.Fatal(err)
	}
	// A failed attempt: no zone holds the name.
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
	if err := m.Manage(fctx, "x.nowhere.test"); err == nil {
		t.Fatal("Manage of a name in no zone succeeded")
	}
	fcancel()
	hello := func(name string) {
		_, _ = m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	}
	hello("a.example.test")
	for range 3 {
		hello("unknown.example.test")
	}
	for range 2 {
		hello("")
	}

	got := scrape(t, reg)
	status := m.Status()
	var a tlsauto.NameStatus
	for _, n := range status.Names {
		if n.Name == "a.example.test" {
			a = n
		}
	}
	if a.Certificate == nil {
		t.Fatalf("a.example.test is not served: %+v", status)
	}
	exact := map[string]float64{
		"certfleet_certificate_not_after_timestamp_seconds{name=a.example.test}": float64(a.Certificate.NotAfter.UnixNano()) / 1e9,
		"certfleet_certificate_renewal_timestamp_seconds{name=a.example.test}":   float64(a.RenewAt.UnixNano()) / 1e9,
		"certfleet_certificate_ready{name=a.example.test}":                       1,
		"certfleet_certificate_ready{name=x.nowhere.test}":                       0,
		"certfleet_obtain_total{renewal=false,result=success}":                   1,
		"certfleet_obtain_total{renewal=true,result=success}":                    1,
		"certfleet_handshakes_total{result=served}":                              1,
		"certfleet_handshakes_total{result=unknown_name}":                        3,
		"certfleet_handshakes_total{result=no_sni}":                              2,
	}
	for k, want := range exact {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	atLeast := map[string]float64{
		"certfleet_obtain_total{renewal=false,result=failure}":               1,
		"certfleet_obtain_duration_seconds{}":                                3,
		"certfleet_dns_propagation_seconds{}":                                2, // one record per order
		"certfleet_acme_requests_total{endpoint=new-order,status=201}":       2,
		"certfleet_acme_requests_total{endpoint=finalize,status=200}":        2,
		"certfleet_storage_operations_total{operation=store,result=success}": 2,
		"certfleet_lock_wait_seconds{}":                                      2,
	}
	for k, want := range atLeast {
		if got[k] < want {
			t.Errorf("%s = %v, want at least %v", k, got[k], want)
		}
	}
	var dnsAppends float64
	for k, v := range got {
		if strings.HasPrefix(k, "certfleet_dns_requests_total{") && strings.Contains(k, "operation=append") && strings.Contains(k, "result=success") {
			dnsAppends += v
		}
	}
	if dnsAppends < 2 {
		t.Errorf("certfleet_dns_requests_total of successful appends = %v, want at least 2 (one per order)", dnsAppends)
	}
	if _, ok := got["certfleet_certificate_not_after_timestamp_seconds{name=x.nowhere.test}"]; ok {
		t.Error("an expiry is reported for a name with no certificate")
	}
	for k := range got {
		if strings.Contains(k, a.Certificate.Serial) {
			t.Errorf("a label holds the serial: %s", k)
		}
	}
}

// TestTlsautoDoesNotLinkPrometheus holds the promise that only programs
// importing this package pay for client_golang.
func TestTlsautoDoesNotLinkPrometheus(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to list dependencies with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/certfleet/certfleet/tlsauto").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/prometheus/") {
			t.Errorf("importing tlsauto links %s", pkg)
		}
	}
	if !strings.Contains(string(out), "github.com/certfleet/certfleet/tlsauto") {
		t.Fatalf("go list printed no tlsauto:\n%s", out)
	}
}
