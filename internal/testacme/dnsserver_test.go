package testacme_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// startDNS serves zones example.test and delegated.test on a fresh server.
func startDNS(t *testing.T) (*testacme.Zones, *testacme.Provider, *testacme.DNSServer) {
	t.Helper()
	zones := testacme.NewZones()
	for _, z := range []string{"example.test", "delegated.test"} {
		if err := zones.AddZone(z); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := testacme.NewDNSServer(zones, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return zones, testacme.NewProvider(zones), srv
}

func appendRecords(t *testing.T, p *testacme.Provider, zone string, recs ...libdns.Record) {
	t.Helper()
	if _, err := p.AppendRecords(context.Background(), zone, recs); err != nil {
		t.Fatalf("AppendRecords(%s): %v", zone, err)
	}
}

func TestDNSServerAnswersApexSOAAndNSAuthoritatively(t *testing.T) {
	_, _, srv := startDNS(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			soa := query(t, network, srv.Addr(), "example.test", dns.TypeSOA)
			if soa.Rcode != dns.RcodeSuccess || !soa.Authoritative || len(soa.Answer) != 1 {
				t.Fatalf("SOA reply: rcode %s, AA %v, %d answers; want NOERROR, AA, 1 answer", dns.RcodeToString[soa.Rcode], soa.Authoritative, len(soa.Answer))
			}
			if got := soa.Answer[0].(*dns.SOA); got.Hdr.Name != "example.test." || got.Ns != "ns1.example.test." {
				t.Errorf("SOA %v: want example.test. with primary ns1.example.test.", got)
			}
			ns := query(t, network, srv.Addr(), "EXAMPLE.test.", dns.TypeNS)
			if !ns.Authoritative || len(ns.Answer) != 1 || ns.Answer[0].(*dns.NS).Ns != "ns1.example.test." {
				t.Fatalf("NS reply %v: want AA and ns1.example.test.", ns)
			}
			if len(ns.Extra) != 1 || ns.Extra[0].(*dns.A).A.String() != "127.0.0.1" {
				t.Errorf("NS reply additional section %v: want ns1.example.test. A 127.0.0.1", ns.Extra)
			}
		})
	}
}

func TestDNSServerNegativeAnswersCarrySOA(t *testing.T) {
	_, p, srv := startDNS(t)
	appendRecords(t, p, "example.test", libdns.TXT{Name: "a.b", Text: "x"})
	tests := []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"nope.example.test", dns.TypeTXT, dns.RcodeNameError},
		{"example.test", dns.TypeTXT, dns.RcodeSuccess},   // apex, no TXT
		{"a.b.example.test", dns.TypeA, dns.RcodeSuccess}, // name with other types
		{"b.example.test", dns.TypeTXT, dns.RcodeSuccess}, // empty non-terminal
		{"x.a.b.example.test", dns.TypeSOA, dns.RcodeNameError},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m := query(t, "udp", srv.Addr(), tt.name, tt.qtype)
			if m.Rcode != tt.rcode || !m.Authoritative || len(m.Answer) != 0 {
				t.Fatalf("rcode %s, AA %v, answers %v; want %s, AA, no answers", dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer, dns.RcodeToString[tt.rcode])
			}
			if len(m.Ns) != 1 || m.Ns[0].Header().Name != "example.test." || m.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("authority section %v: want the SOA of example.test.", m.Ns)
			}
		})
	}
}

func TestDNSServerOutsideItsZones(t *testing.T) {
	_, _, srv := startDNS(t)
	above := query(t, "udp", srv.Addr(), "test.", dns.TypeSOA)
	if above.Rcode != dns.RcodeSuccess || above.Authoritative || len(above.Answer) != 0 {
		t.Errorf("name above a zone: rcode %s, AA %v; want NOERROR, not AA, no answer", dns.RcodeToString[above.Rcode], above.Authoritative)
	}
	unrelated := query(t, "udp", srv.Addr(), "example.org.", dns.TypeA)
	if unrelated.Rcode != dns.RcodeRefused {
		t.Errorf("unrelated name: rcode %s, want REFUSED", dns.RcodeToString[unrelated.Rcode])
	}
}

func TestDNSServerServesSeveralTXTValuesOverUDPAndTCP(t *testing.T) {
	_, p, srv := startDNS(t)
	long := strings.Repeat("0123456789", 40) // over 255 octets: several character-strings
	want := []string{"value-one", "value-two", long, `back\slash "quoted"`}
	for _, v := range want {
		appendRecords(t, p, "example.test.", libdns.TXT{Name: "_acme-challenge", Text: v})
	}
	for _, network := range []string{"udp-edns", "tcp"} {
		m := query(t, network, srv.Addr(), "_acme-challenge.example.test", dns.TypeTXT)
		got := txtValues(m)
		slices.Sort(got)
		sorted := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, sorted) || m.Truncated {
			t.Errorf("%s: TXT values %q, want %q", network, got, sorted)
		}
	}
}

func TestDNSServerTruncatesLargeUDPAnswers(t *testing.T) {
	_, p, srv := startDNS(t)
	for i := range 10 {
		appendRecords(t, p, "example.test", libdns.TXT{Name: "big", Text: strings.Repeat(string(rune('a'+i)), 200)})
	}
	if m := query(t, "udp", srv.Addr(), "big.example.test", dns.TypeTXT); !m.Truncated {
		t.Errorf("UDP answer of 2 KB without EDNS0 not truncated")
	}
	if m := query(t, "tcp", srv.Addr(), "big.example.test", dns.TypeTXT); m.Truncated || len(m.Answer) != 10 {
		t.Errorf("TCP answer: truncated %v, %d answers; want all 10", m.Truncated, len(m.Answer))
	}
}

func TestDNSServerFollowsCNAMEInsideItsZones(t *testing.T) {
	_, p, srv := startDNS(t)
	appendRecords(t, p, "example.test",
		libdns.CNAME{Name: "_acme-challenge", Target: "_acme-challenge.delegated.test."},
		libdns.CNAME{Name: "_acme-challenge.away", Target: "elsewhere.example.org"})
	appendRecords(t, p, "delegated.test", libdns.TXT{Name: "_acme-challenge", Text: "token"})

	m := query(t, "tcp", srv.Addr(), "_acme-challenge.example.test", dns.TypeTXT)
	if len(m.Answer) != 2 || m.Answer[0].Header().Rrtype != dns.TypeCNAME || !slices.Equal(txtValues(m), []string{"token"}) {
		t.Errorf("answer %v: want the CNAME and the TXT at its target", m.Answer)
	}
	m = query(t, "udp", srv.Addr(), "_acme-challenge.away.example.test", dns.TypeTXT)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.CNAME).Target != "elsewhere.example.org." {
		t.Errorf("answer %v: want only the CNAME to the name outside the served zones", m)
	}
	m = query(t, "udp", srv.Addr(), "_acme-challenge.example.test", dns.TypeCNAME)
	if len(m.Answer) != 1 {
		t.Errorf("CNAME query answer %v: want the CNAME alone", m.Answer)
	}
}

func TestCertmagicFindsZoneThroughServer(t *testing.T) {
	zones, _, srv := startDNS(t)
	if err := zones.AddZone("sub.example.test"); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"_acme-challenge.www.example.test": "example.test.",
		"example.test":                     "example.test.",
		"_acme-challenge.sub.example.test": "sub.example.test.",
	}
	for fqdn, want := range tests {
		got, err := certmagic.FindZoneByFQDN(context.Background(), zap.NewNop(), fqdn, []string{srv.Addr()})
		if err != nil || got != want {
			t.Errorf("FindZoneByFQDN(%s) = %q, %v; want %q", fqdn, got, err, want)
		}
	}
}

func TestPausedServerAnswersFromSnapshot(t *testing.T) {
	zones, p, primary := startDNS(t)
	secondary, err := testacme.NewDNSServer(zones, "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secondary.Close() })
	err = zones.SetNameServers("example.test",
		testacme.NameServer{Host: "ns1.example.test", Addr: netip.MustParseAddr("127.0.0.1")},
		testacme.NameServer{Host: "ns2.example.test", Addr: netip.MustParseAddr("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, "udp", secondary.Addr(), "ns2.example.test", dns.TypeA); len(got.Answer) != 1 {
		t.Fatalf("ns2 A: %v, want 127.0.0.2", got.Answer)
	}

	secondary.Pause()
	serial := zones.Serial("example.test")
	appendRecords(t, p, "example.test", libdns.TXT{Name: "_acme-challenge", Text: "new"})
	if got := txtValues(query(t, "udp", primary.Addr(), "_acme-challenge.example.test", dns.TypeTXT)); !slices.Equal(got, []string{"new"}) {
		t.Errorf("primary: TXT %q, want [new]", got)
	}
	lag := query(t, "tcp", secondary.Addr(), "_acme-challenge.example.test", dns.TypeTXT)
	if lag.Rcode != dns.RcodeNameError || lag.Ns[0].(*dns.SOA).Serial != serial {
		t.Errorf("paused secondary: rcode %s, authority %v; want NXDOMAIN with the old serial %d", dns.RcodeToString[lag.Rcode], lag.Ns, serial)
	}

	secondary.Resume()
	if got := txtValues(query(t, "udp", secondary.Addr(), "_acme-challenge.example.test", dns.TypeTXT)); !slices.Equal(got, []string{"new"}) {
		t.Errorf("resumed secondary: TXT %q, want [new]", got)
	}
	if primary.Queries() == 0 || secondary.Queries() == 0 {
		t.Errorf("query counters %d, %d: want both non-zero", primary.Queries(), secondary.Queries())
	}
}

func TestWorldStartsExtraDNSServersOverItsZones(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	extra, err := w.StartDNSServer("127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	appendRecords(t, w.Provider(), "example.test", libdns.TXT{Name: "x", Text: "shared"})
	for _, addr := range []string{w.DNSAddr(), extra.Addr()} {
		if got := txtValues(query(t, "udp", addr, "x.example.test", dns.TypeTXT)); !slices.Equal(got, []string{"shared"}) {
			t.Errorf("%s: TXT %q, want [shared]", addr, got)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.StartDNSServer("127.0.0.3:0"); err == nil {
		t.Error("StartDNSServer after Close succeeded, want an error")
	}
}

func TestNewDNSServerRejectsBadAddress(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1", "localhost:0", "127.0.0.1:notaport"} {
		if s, err := testacme.NewDNSServer(testacme.NewZones(), addr); err == nil {
			_ = s.Close()
			t.Errorf("NewDNSServer(%q) succeeded, want an error", addr)
		}
	}
}
