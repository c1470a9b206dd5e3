package tlsauto_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/tlsauto"
)

// TestStatusHealthAndStatsTellWhatHappened runs a Manager with one name that
// is obtained and one whose DNS writes fail, and checks what Status,
// HealthHandler and Stats say of each, before and after the DNS API
// recovers.
func TestStatusHealthAndStatsTellWhatHappened(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	dns := &flakyDNS{Provider: w.Provider(), failing: "down.example.test"}
	dns.down.Store(true)
	cfg := dnsConfig(t, w, fileStore(t, t.TempDir()), "up.example.test", "down.example.test")
	cfg.DNS = dns
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := m.Start(ctx); err == nil {
		t.Fatal("Start succeeded although down.example.test cannot be obtained")
	}

	// What Status says of who obtained a certificate and when it renews is
	// read from storage in the background after the certificate is served.
	wait.For(t, 30*time.Second, "Status to note who obtained up.example.test", func() bool {
		for _, ns := range m.Status().Names {
			if ns.Name == "up.example.test" && ns.ObtainedBy != "" && !ns.RenewAt.IsZero() {
				return true
			}
		}
		return false
	})
	st := m.Status()
	byName := map[string]tlsauto.NameStatus{}
	for _, ns := range st.Names {
		byName[ns.Name] = ns
	}
	up, down := byName["up.example.test"], byName["down.example.test"]
	if up.State != tlsauto.StateOK || up.Certificate == nil || up.Certificate.Serial == "" || up.Certificate.KeyType != "ecdsa-P-256" {
		t.Errorf("up.example.test: %+v (certificate %+v), want ok with a P-256 certificate", up, up.Certificate)
	}
	if up.ObtainedBy != st.Member || st.Member == "" {
		t.Errorf("up.example.test obtained by %q, want this member %q", up.ObtainedBy, st.Member)
	}
	if c := up.Certificate; c != nil && (up.RenewAt.Before(c.NotBefore) || up.RenewAt.After(c.NotAfter) || (up.RenewReason != "ari" && up.RenewReason != "lifetime ratio")) {
		t.Errorf("up.example.test renews at %v (%q), outside its lifetime %v–%v", up.RenewAt, up.RenewReason, c.NotBefore, c.NotAfter)
	}
	if down.State != tlsauto.StateFailing || !strings.Contains(down.LastError, "service unavailable") || down.ConsecutiveFailures < 1 || down.NextRetry.IsZero() || down.Certificate != nil {
		t.Errorf("down.example.test: %+v, want failing with its error, failures and next retry", down)
	}
	if st.Healthy || len(st.Faults) != 1 || !strings.HasPrefix(st.Faults[0], "down.example.test") {
		t.Errorf("health %v, faults %q: want down.example.test at fault", st.Healthy, st.Faults)
	}
	if code, body := health(t, m); code != http.StatusServiceUnavailable || !strings.Contains(body, "down.example.test") {
		t.Errorf("HealthHandler: %d %s, want 503 naming down.example.test", code, body)
	}

	// Handshakes of each kind, counted.
	for _, sni := range []string{"up.example.test", "unknown.example.test", ""} {
		m.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	}
	stats := m.Stats()
	if h := stats.Handshakes; h.Served != 1 || h.UnknownName != 1 || h.NoSNI != 1 {
		t.Errorf("handshakes %+v, want one of each", h)
	}
	counts := map[string]uint64{}
	for _, o := range stats.Obtains {
		counts["obtain/"+o.Result] += o.Count
	}
	for _, d := range stats.DNSRequests {
		counts["dns/"+d.Operation+"/"+d.Result] += d.Count
	}
	for _, a := range stats.ACMERequests {
		counts["acme/"+a.Endpoint+"/"+a.Status] += a.Count
	}
	for _, s := range stats.StorageOps {
		counts["storage/"+s.Operation+"/"+s.Result] += s.Count
	}
	for _, want := range []string{"obtain/success", "obtain/failure", "dns/append/success", "dns/append/error", "dns/delete/success",
		"acme/new-order/201", "acme/finalize/200", "acme/directory/200", "storage/store/success", "storage/load/success", "storage/lock/success"} {
		if counts[want] == 0 {
			t.Errorf("no count for %s; counts %v", want, counts)
		}
	}
	if stats.ObtainDuration.Count == 0 || stats.Propagation.Count == 0 || stats.LockWait.Count == 0 {
		t.Errorf("histograms empty: obtain %d, propagation %d, lock wait %d", stats.ObtainDuration.Count, stats.Propagation.Count, stats.LockWait.Count)
	}

	dns.down.Store(false)
	wait.For(t, time.Minute, "every name to be healthy and ok", func() bool {
		st := m.Status()
		for _, ns := range st.Names {
			if ns.State != tlsauto.StateOK {
				return false
			}
		}
		return st.Healthy
	})
	if code, _ := health(t, m); code != http.StatusOK {
		t.Errorf("HealthHandler after recovery: %d, want 200", code)
	}
	for _, ns := range m.Status().Names {
		if ns.State != tlsauto.StateOK || ns.ConsecutiveFailures != 0 || ns.LastError != "" {
			t.Errorf("after recovery %s: %+v, want ok", ns.Name, ns)
		}
	}
}

func health(t *testing.T, m *tlsauto.Manager) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var st tlsauto.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("HealthHandler body is not Status JSON: %v\n%s", err, rec.Body.String())
	}
	return rec.Code, rec.Body.String()
}
