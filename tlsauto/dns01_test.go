package tlsauto_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/azure"
	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/dnsprovider/googleclouddns"
	"github.com/certfleet/certfleet/dnsprovider/route53"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// Test credentials of the fake provider APIs.
const (
	cfToken    = "cf-test-token-0123456789"
	awsKeyID   = "AKIAIOSFODNN7EXAMPLE"
	awsSecret  = "test/secret/key/0123456789abcdefghijklmn"
	testRegion = "us-east-1"
)

// dnsConfig returns a Config that obtains certificates for names from w with
// certfleet's DNS-01 solver fully on: every nameserver checked directly.
func dnsConfig(t *testing.T, w *testacme.World, store certmagic.Storage, names ...string) tlsauto.Config {
	t.Helper()
	cfg := testConfig(t, w, names...)
	cfg.Storage = store
	cfg.PropagationTimeout = 30 * time.Second
	cfg.PropagationCheck = dns01.PropagationAll
	cfg.DNSPort = worldPort(t, w)
	return cfg
}

func worldPort(t testing.TB, w *testacme.World) int {
	t.Helper()
	_, p, err := net.SplitHostPort(w.DNSAddr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return port
}

// fileStore opens certfleet's file storage in dir, with a short lock TTL so
// that locks of killed processes expire quickly.
func fileStore(t testing.TB, dir string) *file.Storage {
	t.Helper()
	s, err := file.New(context.Background(), file.Config{Dir: dir, LockTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fastRetries wraps p in retries of its transient errors that are quick
// enough for tests (the solver does not wrap it again).
func fastRetries(p dnsprovider.Provider) dnsprovider.Provider {
	return dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{MaxAttempts: 10, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond})
}

// journal returns the keys of the DNS-01 journal in store.
func journal(t testing.TB, store certmagic.Storage) []string {
	t.Helper()
	keys, err := store.List(context.Background(), "dns01/journal", false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return keys
}

// challengeRecords returns the TXT records in the zones of w, as
// "name=value".
func challengeRecords(t testing.TB, w *testacme.World) []string {
	t.Helper()
	var out []string
	for _, zone := range w.Zones().Names() {
		rrs, err := w.Zones().Records(zone)
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range rrs {
			if rr.Type == "TXT" {
				out = append(out, libdns.AbsoluteName(rr.Name, zone)+"="+rr.Data)
			}
		}
	}
	return out
}

// isolateAWS keeps the AWS SDK away from this machine's AWS settings and
// points it at the fake Route 53 API at endpoint.
func isolateAWS(t *testing.T, endpoint string) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range awsEnv(dir, endpoint) {
		t.Setenv(k, v)
	}
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS", "AWS_CA_BUNDLE", "AWS_DEFAULTS_MODE", "AWS_RETRY_MODE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func awsEnv(dir, endpoint string) map[string]string {
	return map[string]string{
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL_ROUTE_53":   endpoint,
	}
}

func route53Provider(t testing.TB) dnsprovider.Provider {
	t.Helper()
	// The SDK makes one attempt: retrying is the solver's job.
	p, err := route53.New(route53.Config{Region: testRegion, AccessKeyID: awsKeyID, SecretAccessKey: awsSecret, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// faultyAPI is a fake provider API with its fault injection.
type faultyAPI interface {
	SetFaults(apifake.Faults)
	Stats() apifake.Stats
	Close()
}

func TestIssuesApexAndWildcardThroughEachFakeProviderAPI(t *testing.T) {
	providers := []struct {
		name  string
		start func(t *testing.T, w *testacme.World) (faultyAPI, dnsprovider.Provider)
	}{
		{"cloudflare", func(t *testing.T, w *testacme.World) (faultyAPI, dnsprovider.Provider) {
			f := apifake.NewCloudflare(w.Provider(), cfToken)
			p, err := cloudflare.New(cloudflare.Config{APIToken: cfToken, HTTPClient: f.Client()})
			if err != nil {
				t.Fatal(err)
			}
			return f, p
		}},
		{"route53", func(t *testing.T, w *testacme.World) (faultyAPI, dnsprovider.Provider) {
			f := apifake.NewRoute53(w.Provider())
			f.SetPendingPolls(0)
			isolateAWS(t, f.URL())
			return f, route53Provider(t)
		}},
		{"googleclouddns", func(t *testing.T, w *testacme.World) (faultyAPI, dnsprovider.Provider) {
			f := apifake.NewGoogleCloudDNS(w.Provider(), "certfleet-test")
			p, err := googleclouddns.New(googleclouddns.Config{ServiceAccountJSON: f.ServiceAccountJSON(), HTTPClient: f.Client()})
			if err != nil {
				t.Fatal(err)
			}
			return f, p
		}},
		{"azure", func(t *testing.T, w *testacme.World) (faultyAPI, dnsprovider.Provider) {
			creds := apifake.AzureCredentials{
				TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0c5a4e0e-3a8b-4b1e-9d53-1f6a1b2c3d4e",
				ClientSecret: "test~azure.secret_0123456789", SubscriptionID: "11111111-2222-3333-4444-555555555555", ResourceGroup: "dns-rg",
			}
			f := apifake.NewAzure(w.Provider(), creds)
			p, err := azure.New(azure.Config{
				TenantID: creds.TenantID, ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
				SubscriptionID: creds.SubscriptionID, ResourceGroup: creds.ResourceGroup, HTTPClient: f.Client(),
			})
			if err != nil {
				t.Fatal(err)
			}
			return f, p
		}},
	}
	for _, prov := range providers {
		for _, faults := range []float64{0, 0.3} {
			t.Run(fmt.Sprintf("%s/faults=%v", prov.name, faults), func(t *testing.T) {
				w := testacme.Start(t, testacme.Options{})
				api, p := prov.start(t, w)
				t.Cleanup(api.Close)
				// Transient errors on a share of the requests; some writes are
				// applied but their answer is lost.
				api.SetFaults(apifake.Faults{Rate: faults, LostRate: faults / 3, Seed: 7})
				store := fileStore(t, t.TempDir())
				cfg := dnsConfig(t, w, store, "example.test", "*.example.test")
				cfg.DNS = fastRetries(p)
				m := startManager(t, cfg)
				addr := serve(t, m)
				for _, sni := range []string{"example.test", "www.example.test"} {
					mustHandshake(t, addr, sni, w.Roots())
				}
				if faults > 0 && api.Stats().Faults == 0 {
					t.Fatal("test error: no fault was injected")
				}
				t.Logf("API stats: %+v", api.Stats())
				if got := challengeRecords(t, w); len(got) != 0 {
					t.Errorf("orphan challenge records in the zone: %q", got)
				}
				if got := journal(t, store); len(got) != 0 {
					t.Errorf("journal entries left: %q", got)
				}
			})
		}
	}
}

func TestIssuesThroughCNAMEDelegatedChallengeWritingOnlyInTargetZone(t *testing.T) {
	w := testacme.Start(t, testacme.Options{Zones: []string{"example.test", "acme-delegated.test"}})
	if _, err := w.Provider().AppendRecords(context.Background(), "example.test.", []libdns.Record{
		libdns.CNAME{Name: "_acme-challenge.app", Target: "app.acme-delegated.test."},
	}); err != nil {
		t.Fatal(err)
	}
	var audit syncbuf.Buffer
	store := fileStore(t, t.TempDir())
	cfg := dnsConfig(t, w, store, "app.example.test")
	// The guard fails any write outside the delegated zone.
	cfg.DNS = dnsprovider.Audit(dnsprovider.Guard(w.Provider(), "acme-delegated.test"),
		slog.New(slog.NewJSONHandler(&audit, nil)))
	m := startManager(t, cfg)
	mustHandshake(t, serve(t, m), "app.example.test", w.Roots())

	var appends int
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var rec struct{ Op, Zone, Name, Result string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit record %q: %v", line, err)
		}
		if rec.Zone != "acme-delegated.test." || rec.Name != "app.acme-delegated.test." || rec.Result != "ok" {
			t.Errorf("audit record outside the delegated target: %s", line)
		}
		if rec.Op == "append" {
			appends++
		}
	}
	if appends != 1 {
		t.Errorf("%d appends audited, want 1:\n%s", appends, audit.String())
	}
	if got := challengeRecords(t, w); len(got) != 0 {
		t.Errorf("challenge records left: %q", got)
	}
}

func TestSecretNeverAppearsAndGuardRefusesOutOfZoneWrites(t *testing.T) {
	const sentinel = "SENTINEL-cloudflare-token-0123456789"
	tests := []struct {
		name      string
		token     string   // the token the provider is configured with
		guard     []string // zones the guard allows; nil: no guard
		wantErr   []string // the Start error contains each; none: success
		wantNoAPI bool     // no record is written through the API
	}{
		{"issues", sentinel, nil, nil, false},
		{"guard refuses a zone it does not allow", sentinel, []string{"other.test"},
			[]string{"guard refused append", `zone "example.test."`, "outside the allowed zones"}, true},
		{"provider refuses a bad token", sentinel + "-revoked", nil,
			[]string{"cloudflare", "example.test", "permanent error", "HTTP 403"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := testacme.Start(t, testacme.Options{})
			f := apifake.NewCloudflare(w.Provider(), sentinel)
			t.Cleanup(f.Close)
			p, err := cloudflare.New(cloudflare.Config{APIToken: tt.token, HTTPClient: f.Client()})
			if err != nil {
				t.Fatal(err)
			}
			var logs syncbuf.Buffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			if tt.guard != nil {
				p = dnsprovider.Guard(p, tt.guard...)
			}
			cfg := dnsConfig(t, w, fileStore(t, t.TempDir()), "example.test")
			cfg.DNS = dnsprovider.Audit(p, logger)
			cfg.Logger = logger
			var events []string
			cfg.OnEvent = func(e tlsauto.Event) { events = append(events, fmt.Sprintf("%+v %v", e, e.Err)) }
			m, err := tlsauto.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			timeout := time.Minute
			if tt.wantErr != nil {
				timeout = 1500 * time.Millisecond // Start retries until its context ends
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err = m.Start(ctx)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("%v\nlogs:\n%s", err, logs.String())
			case tt.wantErr != nil && err == nil:
				t.Fatal("Start succeeded")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if got := f.Stats().Ops["CreateRecord"]; tt.wantNoAPI && got != 0 {
				t.Errorf("%d records were created through the API", got)
			}
			m.Close()
			if !strings.Contains(logs.String(), `"msg":"dns change"`) {
				t.Errorf("no audit record in the logs:\n%s", logs.String())
			}
			for what, s := range map[string]string{"logs (audit records included)": logs.String(), "events": strings.Join(events, "\n"), "error": fmt.Sprint(err)} {
				if strings.Contains(s, sentinel) {
					t.Errorf("the API token appears in the %s", what)
				}
			}
		})
	}
}

// childSpec tells a child process of a cross-process test what to do. The
// child is this test binary, run for one test with the spec in childEnv.
type childSpec struct {
	Role       string        // "crash" or "issue"
	Domain     string        // the one name to manage
	CA         string        // ACME directory
	RootsFile  string        // PEM of the ACME server's HTTPS roots
	Resolver   string        // the world's DNS server
	DNSPort    int           // its port
	StorageDir string        // the fleet's file storage
	Delay      time.Duration // PropagationDelay
	Lease      time.Duration // the solver's OwnerLease
}

const childEnv = "CERTFLEET_TEST_CHILD"

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	stdin  interface{ Close() error }
	exited chan error
}

// startChild runs test name of this binary as a child with spec; env adds
// variables. The child exits when the parent dies (its stdin closes).
func startChild(t *testing.T, name string, spec childSpec, env map[string]string) *child {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	c := &child{cmd: cmd, out: &syncbuf.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		<-c.exited
		c.exited <- nil // for later readers
		if t.Failed() {
			t.Logf("output of child %s:\n%s", spec.Role, c.out.String())
		}
	})
	return c
}

// wait waits for the child to exit on its own and fails the test unless it
// succeeded.
func (c *child) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-c.exited:
		c.exited <- err
		if err != nil {
			t.Fatalf("child failed: %v\n%s", err, c.out.String())
		}
	case <-time.After(timeout):
		t.Fatalf("child still running after %v:\n%s", timeout, c.out.String())
	}
}

// runChild is the child's side: it manages spec.Domain as the parent's
// world dictates. It returns true in a child process.
func runChild(t *testing.T) bool {
	raw := os.Getenv(childEnv)
	if raw == "" {
		return false
	}
	// Exit when the parent dies: it holds the other end of stdin.
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := os.Stdin.Read(buf); err != nil {
				os.Exit(3)
			}
		}
	}()
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	roots, err := os.ReadFile(spec.RootsFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509Pool(t, roots)
	cfg := tlsauto.Config{
		Domains:            []string{spec.Domain},
		Email:              "ops@example.test",
		CA:                 spec.CA,
		CARoots:            pool,
		DNS:                route53Provider(t),
		Storage:            fileStore(t, spec.StorageDir),
		Resolvers:          []string{spec.Resolver},
		DNSPort:            spec.DNSPort,
		PropagationCheck:   dns01.PropagationAll,
		PropagationDelay:   spec.Delay,
		PropagationTimeout: time.Minute,
		SolverLease:        spec.Lease,
		Logger:             slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return true
}

// childWorld is a world that child processes reach over loopback: its
// ACME server, its DNS server and a fake Route 53 API over its zones.
type childWorld struct {
	*testacme.World
	r53     *apifake.Route53
	spec    childSpec // the common part of the children's specs
	awsEnv  map[string]string
	storage *file.Storage // the parent's view of the fleet's storage
}

func newChildWorld(t *testing.T) *childWorld {
	t.Helper()
	w := testacme.Start(t, testacme.Options{})
	f := apifake.NewRoute53(w.Provider())
	f.SetPendingPolls(0)
	t.Cleanup(f.Close)
	dir := t.TempDir()
	roots := filepath.Join(dir, "acme-roots.pem")
	if err := os.WriteFile(roots, w.ACMERootsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	storageDir := filepath.Join(dir, "storage")
	cw := &childWorld{
		World: w,
		r53:   f,
		spec: childSpec{
			CA: w.DirectoryURL(), RootsFile: roots, Resolver: w.DNSAddr(), DNSPort: worldPort(t, w), StorageDir: storageDir,
		},
		awsEnv:  awsEnv(t.TempDir(), f.URL()),
		storage: fileStore(t, storageDir),
	}
	isolateAWS(t, f.URL())
	return cw
}

// raceProxy forwards requests to a fake Route 53 API, holding each read of
// a record set (ListResourceRecordSets) until another one arrives or hold
// passes. Read-modify-writes of a record set by different processes then
// overlap, and one value is lost, unless something serializes them.
type raceProxy struct {
	srv      *httptest.Server
	hold     time.Duration
	mu       sync.Mutex
	waiting  chan struct{} // a held read, waiting for another
	overlaps int           // reads that met another one in flight
}

func newRaceProxy(t *testing.T, target string, hold time.Duration) *raceProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &raceProxy{hold: hold}
	fwd := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/rrset") {
			p.meet()
		}
		fwd.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *raceProxy) meet() {
	p.mu.Lock()
	if p.waiting != nil {
		close(p.waiting)
		p.waiting = nil
		p.overlaps++
		p.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	p.waiting = ch
	p.mu.Unlock()
	t := time.NewTimer(p.hold)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C: // alone: go on
		p.mu.Lock()
		if p.waiting == ch {
			p.waiting = nil
		}
		p.mu.Unlock()
	}
}

func (p *raceProxy) overlapped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.overlaps
}

func TestCrashedManagerRecordsAreSweptByTheNextStart(t *testing.T) {
	if runChild(t) {
		return
	}
	w := newChildWorld(t)
	const name = "crash.example.test"

	// The child presents its record, then waits (PropagationDelay) until
	// it is killed.
	spec := w.spec
	spec.Role, spec.Domain, spec.Delay, spec.Lease = "crash", name, 10*time.Minute, time.Second
	c := startChild(t, "TestCrashedManagerRecordsAreSweptByTheNextStart", spec, w.awsEnv)
	wait.For(t, time.Minute, "the child to present its record", func() bool {
		return len(w.Zones().TXT("_acme-challenge."+name)) == 1 && len(journal(t, w.storage)) == 1
	})
	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup
		t.Fatal(err)
	}
	<-c.exited
	c.exited <- nil
	orphan := w.Zones().TXT("_acme-challenge." + name)
	if len(orphan) != 1 || len(journal(t, w.storage)) != 1 {
		t.Fatalf("after the kill: TXT %q, journal %q; want the record and its entry left behind", orphan, journal(t, w.storage))
	}

	// The next Manager of the fleet, for the same name, issues the
	// certificate and deletes the record the dead one left.
	cfg := dnsConfig(t, w.World, w.storage, name)
	m := startManager(t, cfg)
	mustHandshake(t, serve(t, m), name, w.Roots())
	wait.For(t, 30*time.Second, "the orphaned record to be deleted", func() bool {
		return len(challengeRecords(t, w.World)) == 0 && len(journal(t, w.storage)) == 0
	})
}

func TestTwoProcessesIssueApexAndWildcardThroughRoute53(t *testing.T) {
	if runChild(t) {
		return
	}
	w := newChildWorld(t)
	// Each child waits until both nameservers serve its record. ns2 lags
	// until the zone holds both values, so that both writes, each a
	// read-modify-write of the same record set, are done before either
	// challenge is validated.
	ns2 := secondNameserver(t, w.World)
	ns2.Pause()

	proxy := newRaceProxy(t, w.r53.URL(), 500*time.Millisecond)
	env := maps.Clone(w.awsEnv)
	env["AWS_ENDPOINT_URL_ROUTE_53"] = proxy.srv.URL

	var children []*child
	for _, domain := range []string{"example.test", "*.example.test"} {
		spec := w.spec
		spec.Role, spec.Domain = "issue", domain
		children = append(children, startChild(t, "TestTwoProcessesIssueApexAndWildcardThroughRoute53", spec, env))
	}
	wait.For(t, time.Minute, "both challenge values in the zone", func() bool {
		return len(w.Zones().TXT("_acme-challenge.example.test")) == 2
	})
	ns2.Resume()
	for _, c := range children {
		c.wait(t, time.Minute)
	}
	if got := w.Counts().Certificates; got != 2 {
		t.Fatalf("%d certificates issued, want 2", got)
	}
	if got := challengeRecords(t, w.World); len(got) != 0 {
		t.Errorf("challenge records left: %q", got)
	}
	if got := journal(t, w.storage); len(got) != 0 {
		t.Errorf("journal entries left: %q", got)
	}
	if got := w.r53.Stats().Ops["ChangeResourceRecordSets"]; got < 4 {
		t.Errorf("%d record set changes, want at least 4 (two writes, two deletes)", got)
	}
	if got := proxy.overlapped(); got != 0 {
		t.Errorf("%d reads of the record set overlapped across the processes, want 0", got)
	}
}

// secondNameserver makes ns1 (127.0.0.1) and ns2 (127.0.0.2) the
// nameservers of example.test, ns2 served on the world's port.
func secondNameserver(t *testing.T, w *testacme.World) *testacme.DNSServer {
	t.Helper()
	ns2, err := w.StartDNSServer("127.0.0.2:" + strconv.Itoa(worldPort(t, w)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Zones().SetNameServers("example.test",
		testacme.NameServer{Host: "ns1.example.test", Addr: netipAddr(t, "127.0.0.1")},
		testacme.NameServer{Host: "ns2.example.test", Addr: netipAddr(t, "127.0.0.2")},
	); err != nil {
		t.Fatal(err)
	}
	return ns2
}

func TestIssuesOnlyOnceEveryNameserverServesTheRecord(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	ns2 := secondNameserver(t, w)
	ns2.Pause()
	cfg := dnsConfig(t, w, fileStore(t, t.TempDir()), "lag.example.test")
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	started := make(chan error, 1)
	go func() { started <- m.Start(context.Background()) }()
	asked := ns2.Queries()
	wait.For(t, time.Minute, "the lagging nameserver to be asked", func() bool {
		return len(w.Zones().TXT("_acme-challenge.lag.example.test")) == 1 && ns2.Queries() >= asked+3
	})
	if c := w.Counts(); c.Certificates != 0 {
		t.Fatalf("a certificate was issued while ns2 lagged: %+v", c)
	}
	ns2.Resume()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Start did not return after ns2 caught up")
	}
	mustHandshake(t, serve(t, m), "lag.example.test", w.Roots())
}

func TestNewRejectsBadDNS01Settings(t *testing.T) {
	tests := []struct {
		name   string
		change func(*tlsauto.Config)
		want   string
	}{
		{"unknown check", func(c *tlsauto.Config) { c.PropagationCheck = "most" }, `PropagationCheck: unknown propagation check "most"`},
		{"resolvers check without resolvers", func(c *tlsauto.Config) { c.PropagationCheck = dns01.PropagationResolvers; c.Resolvers = nil }, "PropagationCheck"},
		{"negative delay", func(c *tlsauto.Config) { c.PropagationDelay = -time.Second }, "PropagationDelay"},
		{"bad port", func(c *tlsauto.Config) { c.DNSPort = 65536 }, "DNSPort: 65536 is not a port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsauto.Config{Domains: []string{"example.test"}, Email: "ops@example.test", DNS: testacme.NewProvider(testacme.NewZones()),
				Storage: &certmagic.FileStorage{Path: t.TempDir()}, Resolvers: []string{"127.0.0.1"}}
			tt.change(&cfg)
			m, err := tlsauto.New(cfg)
			if err == nil {
				m.Close()
				t.Fatal("New accepted the config")
			}
			var ce *tlsauto.ConfigError
			if !strings.Contains(err.Error(), tt.want) || !errors.As(err, &ce) {
				t.Fatalf("error %q: want a *ConfigError containing %q", err, tt.want)
			}
		})
	}
}

func x509Pool(t *testing.T, pemData []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("no certificate in the roots file")
	}
	return pool
}

func netipAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
