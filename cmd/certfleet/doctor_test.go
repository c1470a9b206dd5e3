package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/internal/testacme"
)

// doctorJSON runs doctor --json and decodes its report.
func doctorJSON(t *testing.T, w *world, env map[string]string, names ...string) (doctorReport, result) {
	t.Helper()
	r := w.run(t, env, append([]string{"doctor", "--json"}, names...)...)
	var rep doctorReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor --json printed no report (exit %d): %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	return rep, r
}

func findStep(t *testing.T, rep doctorReport, name string) step {
	t.Helper()
	for _, s := range rep.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q in the report: %+v", name, rep.Steps)
	return step{}
}

func TestDoctorPassesOnAGoodSetupAndLeavesNoRecord(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	secondNameserver(t, w.World)
	rep, r := doctorJSON(t, w, nil, "example.test", "*.example.test")
	if r.code != 0 || !rep.OK {
		t.Fatalf("doctor exited %d, ok=%v; want 0, true:\n%s\n%s", r.code, rep.OK, r.stdout, r.stderr)
	}
	for _, s := range rep.Steps {
		if s.Status != statusOK {
			t.Errorf("step %q: %s (%s), want ok", s.Name, s.Status, s.Detail)
		}
	}
	if s := findStep(t, rep, "example.test: resolvers see the public zone"); s.Status != statusOK {
		t.Errorf("split-horizon check without a split: %s (%s), want ok", s.Status, s.Detail)
	}
	served := findStep(t, rep, "example.test: probe record served")
	if len(served.Servers) != 2 {
		t.Fatalf("probe looked at %d servers, want both nameservers: %+v", len(served.Servers), served.Servers)
	}
	for _, row := range served.Servers {
		if row.Result != "seen" {
			t.Errorf("nameserver %s: %s, want seen", row.Server, row.Result)
		}
	}
	if s := findStep(t, rep, "CA profiles"); !strings.Contains(s.Detail, "default") {
		t.Errorf("CA profiles: %q does not name Pebble's profile", s.Detail)
	}
	if got := w.Zones().TXTRecords(); len(got) != 0 {
		t.Errorf("records left in the zone: %q", got)
	}

	// The human form says the same, with the table of nameservers.
	r = w.run(t, nil, "doctor", "example.test")
	if r.code != 0 || !strings.Contains(r.stdout, "all checks passed") || !strings.Contains(r.stdout, "ns2.example.test") {
		t.Fatalf("doctor exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("doctor example.test:\n%s", r.stdout)
}

func TestDoctorNoWriteWritesNothing(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	before := w.r53.Stats()
	rep, r := doctorJSON(t, w, nil, "--no-write", "example.test")
	if r.code != 0 {
		t.Fatalf("doctor --no-write exited %d:\n%s", r.code, r.stdout)
	}
	if s := findStep(t, rep, "example.test: probe record"); s.Status != statusSkip {
		t.Errorf("probe step %s, want skip", s.Status)
	}
	if after := w.r53.Stats(); after.Requests != before.Requests {
		t.Errorf("the provider API got %d requests under --no-write", after.Requests-before.Requests)
	}
}

// hidingBackend is a provider backend that does not know the zone hidden,
// as an account whose credentials do not cover a zone.
type hidingBackend struct {
	*testacme.Provider
	hidden string
}

func (b hidingBackend) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	zones, err := b.Provider.ListZones(ctx)
	var out []libdns.Zone
	for _, z := range zones {
		if strings.TrimSuffix(z.Name, ".") != b.hidden {
			out = append(out, z)
		}
	}
	return out, err
}

func (b hidingBackend) check(zone string) error {
	if strings.TrimSuffix(zone, ".") == b.hidden {
		return fmt.Errorf("zone %s: %w", zone, testacme.ErrNoZone)
	}
	return nil
}

func (b hidingBackend) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	if err := b.check(zone); err != nil {
		return nil, err
	}
	return b.Provider.GetRecords(ctx, zone)
}

func (b hidingBackend) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := b.check(zone); err != nil {
		return nil, err
	}
	return b.Provider.AppendRecords(ctx, zone, recs)
}

func (b hidingBackend) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := b.check(zone); err != nil {
		return nil, err
	}
	return b.Provider.DeleteRecords(ctx, zone, recs)
}

func TestDoctorFailsNamingTheCause(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) *world
		env     map[string]string
		domain  string
		step    string // the step that fails
		mention []string
	}{
		{
			name:    "bad provider credentials",
			setup:   func(t *testing.T) *world { return newWorld(t, testacme.Options{}) },
			env:     map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong-secret"},
			domain:  "example.test",
			step:    "example.test: probe record written",
			mention: []string{"could not write", "route53", "credentials"},
		},
		{
			name: "lagging nameserver",
			setup: func(t *testing.T) *world {
				w := newWorld(t, testacme.Options{})
				secondNameserver(t, w.World).Pause()
				return w
			},
			domain:  "example.test",
			step:    "example.test: probe record served",
			mention: []string{"served by 1 of 2 servers", "CERTFLEET_PROPAGATION_TIMEOUT"},
		},
		{
			name: "zone the provider cannot write",
			setup: func(t *testing.T) *world {
				w := testacme.Start(t, testacme.Options{Zones: []string{"example.test", "other.test"}})
				return newWorldOver(t, w, hidingBackend{Provider: w.Provider(), hidden: "other.test"})
			},
			domain:  "www.other.test",
			step:    "www.other.test: probe record written",
			mention: []string{"zone other.test", "may edit this zone"},
		},
		{
			name: "CAA forbids the CA",
			setup: func(t *testing.T) *world {
				w := newWorld(t, testacme.Options{})
				if _, err := w.Provider().AppendRecords(context.Background(), "example.test",
					[]libdns.Record{libdns.CAA{Name: "@", Tag: "issue", Value: "ca.invalid"}}); err != nil {
					t.Fatal(err)
				}
				return w
			},
			domain:  "www.example.test",
			step:    "www.example.test: CAA",
			mention: []string{`"ca.invalid"`, "pebble.letsencrypt.org"},
		},
		{
			name: "CAA issuewild forbids the CA for a wildcard",
			setup: func(t *testing.T) *world {
				w := newWorld(t, testacme.Options{})
				if _, err := w.Provider().AppendRecords(context.Background(), "example.test", []libdns.Record{
					libdns.CAA{Name: "@", Tag: "issue", Value: "pebble.letsencrypt.org"},
					libdns.CAA{Name: "@", Tag: "issuewild", Value: "ca.invalid"},
				}); err != nil {
					t.Fatal(err)
				}
				return w
			},
			domain:  "*.example.test",
			step:    "*.example.test: CAA",
			mention: []string{"issuewild", `"ca.invalid"`},
		},
		{
			name:    "unreachable storage",
			setup:   func(t *testing.T) *world { return newWorld(t, testacme.Options{}) },
			env:     map[string]string{"CERTFLEET_STORAGE": "redis://127.0.0.1:1/0", "CERTFLEET_START_TIMEOUT": "3s"},
			domain:  "example.test",
			step:    "storage reachable",
			mention: []string{"CERTFLEET_STORAGE", "reachable"},
		},
		{
			name: "nameservers unreachable on port 53",
			setup: func(t *testing.T) *world {
				w := newWorld(t, testacme.Options{})
				// Nothing answers on 127.0.0.9, as when outgoing DNS is blocked.
				if err := w.Zones().SetNameServers("example.test",
					testacme.NameServer{Host: "ns1.example.test", Addr: netip.MustParseAddr("127.0.0.9")}); err != nil {
					t.Fatal(err)
				}
				return w
			},
			env:     map[string]string{"CERTFLEET_PROPAGATION_CHECK": "all"},
			domain:  "example.test",
			step:    "example.test: servers reachable",
			mention: []string{"blocked", "CERTFLEET_PROPAGATION_CHECK=resolvers"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.setup(t)
			rep, r := doctorJSON(t, w, tt.env, tt.domain)
			if r.code != 1 || rep.OK {
				t.Fatalf("doctor exited %d, ok=%v; want 1, false:\n%s", r.code, rep.OK, r.stdout)
			}
			s := findStep(t, rep, tt.step)
			if s.Status != statusFail {
				t.Fatalf("step %q: %s (%s), want fail", tt.step, s.Status, s.Detail)
			}
			for _, m := range tt.mention {
				if !strings.Contains(s.Detail, m) {
					t.Errorf("step %q says %q; want it to mention %q", tt.step, s.Detail, m)
				}
			}
			if testing.Verbose() {
				t.Logf("doctor %s:\n%s", tt.domain, w.run(t, tt.env, "doctor", tt.domain).stdout)
			}
			if strings.Contains(r.stdout+r.stderr, awsSecret) {
				t.Errorf("the output shows the provider's secret")
			}
			if got := w.Zones().TXTRecords(); len(got) != 0 {
				t.Errorf("records left in the zone: %q", got)
			}
		})
	}
}

func TestDoctorChecksThroughResolversWhenNameserversAreUnreachableUnderAuto(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	if err := w.Zones().SetNameServers("example.test",
		testacme.NameServer{Host: "ns1.example.test", Addr: netip.MustParseAddr("127.0.0.9")}); err != nil {
		t.Fatal(err)
	}
	rep, r := doctorJSON(t, w, nil, "example.test")
	if r.code != 0 {
		t.Fatalf("doctor exited %d:\n%s", r.code, r.stdout)
	}
	if s := findStep(t, rep, "example.test: servers reachable"); s.Status != statusWarn || !strings.Contains(s.Detail, "blocked") {
		t.Errorf("servers reachable: %s (%s); want a warning that port 53 is blocked", s.Status, s.Detail)
	}
	served := findStep(t, rep, "example.test: probe record served")
	if len(served.Servers) != 1 || served.Servers[0].Server != "resolver" || served.Servers[0].Result != "seen" {
		t.Errorf("probe record served: %+v; want it seen through the resolver", served.Servers)
	}
}

// splitResolver starts a DNS server on 127.0.0.3 that serves its own copy
// of example.test, as a resolver inside a split-horizon network does: its
// nameserver and SOA primary is ns-internal.example.test, whose address is
// the world's server, so the authoritative nameserver found through it is
// the world's public one, which serves a different SOA and NS set.
func splitResolver(t *testing.T) string {
	t.Helper()
	zones := testacme.NewZones()
	if err := zones.AddZone("example.test",
		testacme.NameServer{Host: "ns-internal.example.test", Addr: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	srv, err := testacme.NewDNSServer(zones, "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv.Addr()
}

func TestDoctorNamesSplitHorizonDNS(t *testing.T) {
	tests := []struct {
		check  string
		status string
	}{
		{"resolvers", statusFail},
		{"all", statusWarn},
		{"auto", statusWarn},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			w := newWorld(t, testacme.Options{})
			env := map[string]string{"CERTFLEET_RESOLVERS": splitResolver(t), "CERTFLEET_PROPAGATION_CHECK": tt.check}
			rep, r := doctorJSON(t, w, env, "--no-write", "example.test")
			s := findStep(t, rep, "example.test: resolvers see the public zone")
			if s.Status != tt.status {
				t.Fatalf("split-horizon step: %s (%s), want %s\n%s", s.Status, s.Detail, tt.status, r.stdout)
			}
			mention := []string{"split-horizon DNS", "different example.test than its public nameservers", "the CA sees the public one", "CERTFLEET_RESOLVERS"}
			if tt.check != "all" {
				mention = append(mention, "CERTFLEET_PROPAGATION_CHECK=all")
			}
			for _, m := range mention {
				if !strings.Contains(s.Detail, m) {
					t.Errorf("split-horizon step says %q; want it to mention %q", s.Detail, m)
				}
			}
			if wantOK := tt.status != statusFail; rep.OK != wantOK || (r.code == 0) != wantOK {
				t.Errorf("doctor exited %d, ok=%v; want ok=%v", r.code, rep.OK, wantOK)
			}
			if testing.Verbose() {
				t.Logf("doctor example.test:\n%s", w.run(t, env, "doctor", "--no-write", "example.test").stdout)
			}
		})
	}
}

func TestDoctorChecksEveryCAInTheirOrder(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	// A second CA whose directory requires account binding and goes by
	// another name in CAA records.
	second := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(rw, `{"newNonce":"https://%[1]s/nonce","newAccount":"https://%[1]s/account","newOrder":"https://%[1]s/order",
			"meta":{"caaIdentities":["second-ca.test"],"externalAccountRequired":true}}`, r.Host)
	}))
	t.Cleanup(second.Close)
	roots := filepath.Join(t.TempDir(), "roots.pem")
	pemBytes := append(w.ACMERootsPEM(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: second.Certificate().Raw})...)
	if err := os.WriteFile(roots, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Provider().AppendRecords(context.Background(), "example.test",
		[]libdns.Record{libdns.CAA{Name: "@", Tag: "issue", Value: "pebble.letsencrypt.org"}}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CERTFLEET_CA": w.DirectoryURL() + "," + second.URL, "CERTFLEET_CA_ROOTS": roots}
	rep, r := doctorJSON(t, w, env, "www.example.test")
	if r.code != 1 || rep.OK {
		t.Fatalf("doctor exited %d, ok=%v; want 1, false (the second CA requires binding):\n%s", r.code, rep.OK, r.stdout)
	}
	for name, want := range map[string]string{
		"CA 1 directory":                        statusOK,
		"CA 1 external account binding":         statusOK,
		"CA 2 directory":                        statusOK,
		"CA 2 external account binding":         statusFail,
		"clock":                                 statusOK,
		"www.example.test: CAA":                 statusWarn,
		"www.example.test: probe record served": statusOK,
	} {
		if s := findStep(t, rep, name); s.Status != want {
			t.Errorf("step %q: %s (%s), want %s", name, s.Status, s.Detail, want)
		}
	}
	caa := findStep(t, rep, "www.example.test: CAA")
	for _, m := range []string{"second-ca.test", second.URL, `"pebble.letsencrypt.org"`} {
		if !strings.Contains(caa.Detail, m) {
			t.Errorf("CAA step says %q; want it to mention %q", caa.Detail, m)
		}
	}
	if !strings.Contains(rep.Steps[0].Detail+r.stdout, second.URL) {
		t.Errorf("the report does not name the second CA:\n%s", r.stdout)
	}
}
