package testacme_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/internal/testacme"
)

func TestSecondHostingServesItsOwnCopyOnItsOwnNameservers(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	h, err := w.StartHosting("example.test",
		testacme.NameServer{Host: "ns-b1.example.test", Addr: netip.MustParseAddr("127.0.0.5")},
		testacme.NameServer{Host: "ns-b2.example.test", Addr: netip.MustParseAddr("127.0.0.6")})
	if err != nil {
		t.Fatal(err)
	}
	// Both groups are the zone's NS set, with addresses, in both copies.
	for _, srv := range []string{w.DNSAddr(), h.Servers()[0].Addr()} {
		m := query(t, "udp", srv, "example.test.", dns.TypeNS)
		var hosts, glue []string
		for _, rr := range m.Answer {
			hosts = append(hosts, rr.(*dns.NS).Ns)
		}
		for _, rr := range m.Extra {
			if a, ok := rr.(*dns.A); ok {
				glue = append(glue, a.A.String())
			}
		}
		slices.Sort(hosts)
		slices.Sort(glue)
		if strings.Join(hosts, " ") != "ns-b1.example.test. ns-b2.example.test. ns1.example.test." || strings.Join(glue, " ") != "127.0.0.1 127.0.0.5 127.0.0.6" {
			t.Fatalf("%s: NS %v, addresses %v", srv, hosts, glue)
		}
	}
	ctx := context.Background()
	if _, err := h.Provider().AppendRecords(ctx, "example.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Provider().AppendRecords(ctx, "example.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "a"}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.Servers() {
		if got := txtValues(query(t, "tcp", s.Addr(), "_acme-challenge.example.test.", dns.TypeTXT)); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("second hosting %s serves %q, want only its own record", s.Addr(), got)
		}
	}
	if got := txtValues(query(t, "udp", w.DNSAddr(), "_acme-challenge.example.test.", dns.TypeTXT)); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("the world serves %q, want only its own record", got)
	}
	h.Pause()
	if _, err := h.Provider().DeleteRecords(ctx, "example.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "b"}}); err != nil {
		t.Fatal(err)
	}
	if got := txtValues(query(t, "udp", h.Servers()[1].Addr(), "_acme-challenge.example.test.", dns.TypeTXT)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("a paused hosting serves %q, want the record as it was", got)
	}
	h.Resume()
	if got := h.TXT("_acme-challenge.example.test"); len(got) != 0 {
		t.Fatalf("TXT = %q after the delete", got)
	}
}
