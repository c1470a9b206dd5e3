package bind_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/internal/testacme/bind"
	"github.com/certfleet/certfleet/internal/wait"
)

func TestServesZonesAndChasesCNAMEsForRecursiveQueries(t *testing.T) {
	ns := bind.Start(t, bind.Options{
		Zones:   []string{"example.test", "validation.test."},
		Records: []string{"_acme-challenge.example.test. 60 IN CNAME example.test.validation.test.", "example.test.validation.test. 60 IN TXT \"token\""},
	})
	ctx := context.Background()

	// Authoritative, no recursion: the CNAME only.
	m := new(dns.Msg)
	m.SetQuestion("_acme-challenge.example.test.", dns.TypeTXT)
	m.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, ns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Fatalf("authoritative answer = %v, want the CNAME alone", r)
	}
	// Recursion desired, as a CA's validation asks: the chain, TXT included.
	m.RecursionDesired = true
	r, _, err = (&dns.Client{Net: "tcp"}).Exchange(m, ns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var txt []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			txt = append(txt, t.Txt...)
		}
	}
	if len(txt) != 1 || txt[0] != "token" {
		t.Fatalf("recursive answer = %v, want the CNAME chased to TXT \"token\"", r)
	}

	got, err := ns.TXTRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "example.test.validation.test. token" {
		t.Errorf("TXTRecords = %q", got)
	}
	if vals, err := ns.TXT(ctx, "example.test.validation.test"); err != nil || len(vals) != 1 {
		t.Errorf("TXT = %q, %v", vals, err)
	}
	// Nothing leaves loopback: a name outside the zones is answered from the
	// local root zone.
	m.SetQuestion("example.com.", dns.TypeA)
	r, _, err = (&dns.Client{Net: "tcp"}).Exchange(m, ns.Addr())
	if err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("query outside the zones = %v, %v: want NXDOMAIN from the local root zone", r, err)
	}
}

func TestCloseStopsNamedAndRemovesItsDirectory(t *testing.T) {
	bind.Require(t)
	ns, err := bind.New(bind.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir, addr := ns.Dir(), ns.Addr()
	if _, err := os.Stat(filepath.Join(dir, "named.pid")); err != nil {
		t.Errorf("no pid file in named's directory: %v", err)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&dns.Client{Net: "tcp"}).Exchange(new(dns.Msg).SetQuestion("example.test.", dns.TypeSOA), addr); err == nil {
		t.Errorf("named still answers on %s after Close", addr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("named's directory %s is still there after Close: %v", dir, err)
	}
	if !strings.Contains(ns.Log(), "running") {
		t.Errorf("named's log lacks \"running\":\n%s", ns.Log())
	}
}

func TestNewRejectsRecordsOutsideItsZones(t *testing.T) {
	_, err := bind.New(bind.Options{Records: []string{"www.example.org. 60 IN A 127.0.0.1"}, Named: "/nonexistent/named"})
	if err == nil || !strings.Contains(err.Error(), "Options.Records[0]") {
		t.Fatalf("New = %v, want an error naming Options.Records[0]", err)
	}
}

// otherServer starts, on 127.0.0.9 at ns's port, an authoritative server
// for other.test whose TXT records (TTL 60) hold the value that txt returns
// at the time of each query.
func otherServer(t *testing.T, ns *bind.Server, txt func() string) {
	t.Helper()
	other := new(dns.ServeMux)
	other.HandleFunc("other.test.", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Authoritative = true
		if r.Question[0].Qtype == dns.TypeTXT {
			rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN TXT \"" + txt() + "\"")
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: net.JoinHostPort("127.0.0.9", strconv.Itoa(ns.Port())), Net: network, Handler: other}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			t.Fatalf("the other nameserver on named's port over %s: %v", network, err)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
}

func TestForwardsZonesItDoesNotServeToANameserverSharingItsPortNumber(t *testing.T) {
	// named for example.test on 127.0.0.1, forwarding other.test to a
	// nameserver on 127.0.0.9 at named's port.
	ns := bind.Start(t, bind.Options{Forward: map[string]string{"other.test": "127.0.0.9"}})
	otherServer(t, ns, func() string { return "from-other" })
	m := new(dns.Msg).SetQuestion("_acme-challenge.other.test.", dns.TypeTXT)
	r, _, err := (&dns.Client{Net: "tcp"}).Exchange(m, ns.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "from-other") {
		t.Errorf("forwarded query = %v, want the other nameserver's TXT", r)
	}
}

func TestNoCacheSeesAChangedRecordSetWithinSeconds(t *testing.T) {
	ns := bind.Start(t, bind.Options{Forward: map[string]string{"other.test": "127.0.0.9"}, NoCache: true})
	var value atomic.Value
	value.Store("first")
	otherServer(t, ns, func() string { return value.Load().(string) })
	ask := func() string {
		r, _, err := (&dns.Client{Net: "tcp"}).Exchange(new(dns.Msg).SetQuestion("_acme-challenge.other.test.", dns.TypeTXT), ns.Addr())
		if err != nil || len(r.Answer) != 1 {
			return ""
		}
		return strings.Join(r.Answer[0].(*dns.TXT).Txt, "")
	}
	if got := ask(); got != "first" {
		t.Fatalf("TXT = %q, want first", got)
	}
	value.Store("second")
	// The record's TTL is a minute; without a cache the change shows once
	// BIND's one-second floor has passed.
	if !wait.Until(10*time.Second, func() bool { return ask() == "second" }) {
		t.Fatalf("TXT is still %q 10 s after the record set changed", ask())
	}
}
