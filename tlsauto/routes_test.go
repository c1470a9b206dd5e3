package tlsauto_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/cloudflare"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	_ "github.com/certfleet/certfleet/dnsprovider/route53"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/certfleet/certfleet/internal/testacme/bind"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/tlsauto"
)

// zoneView is one DNS provider's share of the world: a backend that hosts
// only its zone, and remembers the zones it was asked to write in.
type zoneView struct {
	*testacme.Provider
	zone string

	mu     sync.Mutex
	writes []string // zones of the appends and deletes it received
}

func (v *zoneView) note(zone string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.writes = append(v.writes, zone)
	if !strings.EqualFold(strings.TrimSuffix(zone, "."), strings.TrimSuffix(v.zone, ".")) {
		return fmt.Errorf("zone %s is not hosted here", zone)
	}
	return nil
}

func (v *zoneView) written() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.writes)
}

func (v *zoneView) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := v.note(zone); err != nil {
		return nil, err
	}
	return v.Provider.AppendRecords(ctx, zone, recs)
}

func (v *zoneView) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := v.note(zone); err != nil {
		return nil, err
	}
	return v.Provider.DeleteRecords(ctx, zone, recs)
}

func (v *zoneView) ListZones(context.Context) ([]libdns.Zone, error) {
	return []libdns.Zone{{Name: v.zone}}, nil
}

// cloudflareAccounts is the Cloudflare API with several accounts: each
// request goes to the fake of the account whose token it carries, as the
// real API tells accounts apart by token.
var cloudflareAccounts struct {
	sync.Mutex
	byToken map[string]*apifake.Cloudflare
}

type byToken struct{}

func (byToken) Do(req *http.Request) (*http.Response, error) {
	cloudflareAccounts.Lock()
	f := cloudflareAccounts.byToken[strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")]
	cloudflareAccounts.Unlock()
	if f == nil {
		return nil, fmt.Errorf("no Cloudflare account has the token of this request")
	}
	return f.Client().Do(req)
}

func init() {
	// cloudflare-accounts is the Cloudflare provider, reading
	// CLOUDFLARE_API_TOKEN as the built-in one does, talking to the fakes.
	dnsprovider.Register("cloudflare-accounts", func(getenv func(string) string) (dnsprovider.Provider, error) {
		token, err := dnsprovider.LookupEnv(getenv, cloudflare.EnvAPIToken)
		if err != nil {
			return nil, err
		}
		return cloudflare.New(cloudflare.Config{APIToken: token, HTTPClient: byToken{}})
	})
}

func TestRoutesSendEachZoneToItsOwnProviderAccount(t *testing.T) {
	// Three zones in the test world, on nameservers at 127.0.0.8, written
	// through two Cloudflare accounts and a Route 53 account; a fourth zone,
	// delta.test, on BIND 9 at 127.0.0.1, written over RFC 2136. Every
	// nameserver answers on one port number, as on the internet they all
	// answer on 53. That BIND is also the Manager's resolver: it forwards
	// the other zones to the world. A second BIND is the CA's resolver, as
	// a CA resolves apart from its clients (one resolver for both would
	// answer the validation from the negative answer it cached for the
	// solver's CNAME look-up before the record existed). It does not cache:
	// delta.test and *.delta.test are orders of their own whose values share
	// one record name, and a record set cached for one would lack the
	// other's value.
	worldZones := []string{"alpha.test", "beta.test", "gamma.test"}
	forward := map[string]string{}
	for _, z := range worldZones {
		forward[z] = "127.0.0.8"
	}
	ns := bind.Start(t, bind.Options{Zones: []string{"delta.test"}, Forward: forward})
	worldAddr := net.JoinHostPort("127.0.0.8", strconv.Itoa(ns.Port()))
	caForward := map[string]string{"delta.test": ns.Addr()}
	for _, z := range worldZones {
		caForward[z] = worldAddr
	}
	caResolver := bind.Start(t, bind.Options{Zones: []string{"ca.invalid"}, Forward: caForward, NoCache: true})
	w := testacme.Start(t, testacme.Options{Zones: worldZones, DNSAddr: worldAddr, VAResolver: caResolver.Addr()})
	views := map[string]*zoneView{}
	for _, z := range worldZones {
		if err := w.Zones().SetNameServers(z, testacme.NameServer{Host: "ns-w." + z, Addr: netip.MustParseAddr("127.0.0.8")}); err != nil {
			t.Fatal(err)
		}
		views[z] = &zoneView{Provider: w.Provider(), zone: z + "."}
	}
	const tokenA, tokenB = "cf-account-a-token-0123456789", "cf-account-b-token-0123456789"
	cfA, cfB := apifake.NewCloudflare(views["alpha.test"], tokenA), apifake.NewCloudflare(views["beta.test"], tokenB)
	t.Cleanup(cfA.Close)
	t.Cleanup(cfB.Close)
	cloudflareAccounts.Lock()
	cloudflareAccounts.byToken = map[string]*apifake.Cloudflare{tokenA: cfA, tokenB: cfB}
	cloudflareAccounts.Unlock()
	r53 := apifake.NewRoute53(views["gamma.test"])
	r53.SetPendingPolls(0)
	t.Cleanup(r53.Close)
	isolateAWS(t, r53.URL())

	env := map[string]string{
		"CLOUDFLARE_API_TOKEN":      tokenA,
		"B_CLOUDFLARE_API_TOKEN":    tokenB,
		"AWS_ACCESS_KEY_ID":         "AKIAWRONGACCOUNT0000", // the unprefixed account must not be used
		"AWS_SECRET_ACCESS_KEY":     "wrong/secret/0123456789",
		"R53_AWS_ACCESS_KEY_ID":     awsKeyID,
		"R53_AWS_SECRET_ACCESS_KEY": awsSecret,
		"R53_AWS_REGION":            testRegion,
		"RFC2136_NAMESERVER":        ns.Addr(),
		"RFC2136_TSIG_KEY":          ns.KeyName(),
		"RFC2136_TSIG_SECRET":       ns.Secret(),
	}
	p, err := dnsprovider.RoutesFromEnv("alpha.test=cloudflare-accounts, beta.test=cloudflare-accounts:B_, gamma.test=route53:R53_, delta.test=rfc2136",
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	store := fileStore(t, t.TempDir())
	cfg := dnsConfig(t, w, store, "alpha.test", "*.beta.test", "www.gamma.test", "delta.test", "*.delta.test")
	cfg.Resolvers = []string{ns.Addr()}
	cfg.DNS = fastRetries(p)
	m := startManager(t, cfg)
	addr := serve(t, m)
	for _, sni := range []string{"alpha.test", "x.beta.test", "www.gamma.test", "delta.test", "y.delta.test"} {
		mustHandshake(t, addr, sni, w.Roots())
	}
	for zone, v := range views {
		got := v.written()
		if len(got) == 0 {
			t.Errorf("nothing was written through the provider of %s", zone)
		}
		for _, z := range got {
			if z != zone+"." {
				t.Errorf("the provider of %s was asked to write in %s", zone, z)
			}
		}
	}
	for name, f := range map[string]*apifake.Cloudflare{"account A": cfA, "account B": cfB} {
		if st := f.Stats(); st.Rejected != 0 || st.Ops["CreateRecord"] == 0 {
			t.Errorf("Cloudflare %s: %+v; want records created and no request refused", name, st)
		}
	}
	if st := r53.Stats(); st.Rejected != 0 || st.Ops["ChangeResourceRecordSets"] == 0 {
		t.Errorf("Route 53: %+v; want changes and no request refused", st)
	}
	// BIND took the updates of delta.test, signed with its key, and no
	// update for another zone reached it.
	log := ns.Log()
	if !strings.Contains(log, "updating zone 'delta.test/IN': adding an RR at '_acme-challenge.delta.test' TXT") {
		t.Errorf("BIND logged no update adding the challenge record of delta.test:\n%s", log)
	}
	if strings.Contains(log, "update failed") || strings.Contains(log, "denied") || strings.Count(log, "updating zone '") != strings.Count(log, "updating zone 'delta.test/IN'") {
		t.Errorf("BIND refused an update, or took one for another zone:\n%s", log)
	}
	if got := challengeRecords(t, w); len(got) != 0 {
		t.Errorf("challenge records left: %q", got)
	}
	noChallengeRecordsLeft(t, ns)
	if got := journal(t, store); len(got) != 0 {
		t.Errorf("journal entries left: %q", got)
	}
}

// mirrored is example.test hosted twice: by the world (its nameserver
// ns1.example.test at 127.0.0.1), written through a fake Cloudflare API, and
// by a second hosting (ns-b1, ns-b2 at 127.0.0.5 and 127.0.0.6), written
// through a fake Route 53 API.
type mirrored struct {
	w    *testacme.World
	h    *testacme.Hosting
	cf   *apifake.Cloudflare
	r53  *apifake.Route53
	dns  dnsprovider.Provider
	name string
}

func newMirrored(t *testing.T) *mirrored {
	t.Helper()
	w := testacme.Start(t, testacme.Options{})
	h, err := w.StartHosting("example.test",
		testacme.NameServer{Host: "ns-b1.example.test", Addr: netip.MustParseAddr("127.0.0.5")},
		testacme.NameServer{Host: "ns-b2.example.test", Addr: netip.MustParseAddr("127.0.0.6")})
	if err != nil {
		t.Fatal(err)
	}
	cf := apifake.NewCloudflare(w.Provider(), cfToken)
	t.Cleanup(cf.Close)
	r53 := apifake.NewRoute53(h.Provider())
	r53.SetPendingPolls(0)
	t.Cleanup(r53.Close)
	isolateAWS(t, r53.URL())
	cfp, err := cloudflare.New(cloudflare.Config{APIToken: cfToken, HTTPClient: cf.Client()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := dnsprovider.Mirror(cfp, route53Provider(t))
	if err != nil {
		t.Fatal(err)
	}
	return &mirrored{w: w, h: h, cf: cf, r53: r53, dns: p, name: "_acme-challenge.mirror.example.test"}
}

func TestMirrorIssuesOnlyOnceBothHostingsServeTheRecord(t *testing.T) {
	mz := newMirrored(t)
	mz.h.Pause() // the second provider lags
	store := fileStore(t, t.TempDir())
	cfg := dnsConfig(t, mz.w, store, "mirror.example.test")
	cfg.DNS = fastRetries(mz.dns)
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	started := make(chan error, 1)
	go func() { started <- m.Start(context.Background()) }()
	asked := mz.h.Servers()[1].Queries()
	wait.For(t, time.Minute, "the record on both providers and the lagging nameservers asked", func() bool {
		return len(mz.w.Zones().TXT(mz.name)) == 1 && len(mz.h.TXT(mz.name)) == 1 && mz.h.Servers()[1].Queries() >= asked+3
	})
	if c := mz.w.Counts(); c.Certificates != 0 {
		t.Fatalf("a certificate was issued while the second provider's nameservers lagged: %+v", c)
	}
	mz.h.Resume()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Start did not return once both providers served the record")
	}
	mustHandshake(t, serve(t, m), "mirror.example.test", mz.w.Roots())
	if got := append(mz.w.Zones().TXT(mz.name), mz.h.TXT(mz.name)...); len(got) != 0 {
		t.Errorf("challenge records left: %q", got)
	}
	if got := journal(t, store); len(got) != 0 {
		t.Errorf("journal entries left: %q", got)
	}
}

func TestMirrorLeavesNothingWhenOneProviderRefusesTheWrite(t *testing.T) {
	mz := newMirrored(t)
	mz.r53.FailNext(1000, "AccessDenied")
	store := fileStore(t, t.TempDir())
	cfg := dnsConfig(t, mz.w, store, "mirror.example.test")
	cfg.DNS = mz.dns
	var logs syncbuf.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Start retries failed names until its context ends: watch the first
	// attempts instead.
	go m.Start(context.Background())
	wait.For(t, time.Minute, "a record written on Cloudflare, refused by Route 53 and deleted again", func() bool {
		st := mz.cf.Stats()
		return st.Ops["CreateRecord"] > 0 && st.Ops["DeleteRecord"] > 0 && strings.Contains(logs.String(), "AccessDenied")
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := append(mz.w.Zones().TXT(mz.name), mz.h.TXT(mz.name)...); len(got) != 0 {
		t.Errorf("records left on a provider: %q", got)
	}
	if got := journal(t, store); len(got) != 0 {
		t.Errorf("journal entries left: %q", got)
	}
	if c := mz.w.Counts(); c.Certificates != 0 {
		t.Errorf("a certificate was issued: %+v", c)
	}
}

func TestFencedNameserversIssueThroughResolversByDefaultAndFailFastUnderAll(t *testing.T) {
	for _, policy := range []dns01.Propagation{"", dns01.PropagationAll} {
		t.Run("policy="+string(policy), func(t *testing.T) {
			w := testacme.Start(t, testacme.Options{})
			port := worldPort(t, w)
			b, err := testacme.NewBlackhole(fmt.Sprintf("127.0.0.7:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			if err := w.Zones().SetNameServers("example.test", testacme.NameServer{Host: "ns-fenced.example.test", Addr: netipAddr(t, "127.0.0.7")}); err != nil {
				t.Fatal(err)
			}
			cfg := dnsConfig(t, w, fileStore(t, t.TempDir()), "fenced.example.test")
			cfg.PropagationCheck = policy
			cfg.PropagationTimeout = 2 * time.Minute
			var logs syncbuf.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			m, err := tlsauto.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if policy == "" {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // less than the propagation timeout
				defer cancel()
				if err := m.Start(ctx); err != nil {
					t.Fatal(err)
				}
				mustHandshake(t, serve(t, m), "fenced.example.test", w.Roots())
				return
			}
			// Start retries failed names until its context ends; the
			// solver's first failure is what must come fast.
			go m.Start(context.Background())
			wait.For(t, 30*time.Second, "the solver to fail naming the unreachable nameserver and the fix", func() bool {
				out := logs.String()
				return strings.Contains(out, "cannot check that the TXT record _acme-challenge.fenced.example.test") &&
					strings.Contains(out, "ns-fenced.example.test") && strings.Contains(out, "PropagationCheck=resolvers")
			})
			if c := w.Counts(); c.Certificates != 0 {
				t.Fatalf("a certificate was issued: %+v", c)
			}
		})
	}
}
