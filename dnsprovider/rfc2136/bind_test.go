package rfc2136_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
	"github.com/certfleet/certfleet/internal/testacme/bind"
)

func bindProvider(t testing.TB, ns *bind.Server, mutate func(*rfc2136.Config)) dnsprovider.Provider {
	t.Helper()
	cfg := rfc2136.Config{Nameserver: ns.Addr(), TSIGKey: ns.KeyName(), TSIGSecret: ns.Secret(), TSIGAlgorithm: ns.Algorithm(), Timeout: 5 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := rfc2136.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func txt(name, value string) libdns.Record {
	return libdns.TXT{Name: name, TTL: time.Minute, Text: value}
}

func TestAppendsGetsAndDeletesTXTRecordsOnBIND(t *testing.T) {
	ns := bind.Start(t, bind.Options{})
	p := bindProvider(t, ns, nil)
	ctx := context.Background()
	long := strings.Repeat("x", 300) // two character-strings on the wire
	recs := []libdns.Record{txt("_acme-challenge", "one"), txt("_acme-challenge", "two"), txt("_acme-challenge.www", long)}
	if _, err := p.AppendRecords(ctx, "example.test.", recs); err != nil {
		t.Fatal(err)
	}
	// Appending again changes nothing and succeeds.
	if _, err := p.AppendRecords(ctx, "example.test", recs[:1]); err != nil {
		t.Fatalf("appending a record the zone has: %v", err)
	}
	vals, err := ns.TXT(ctx, "_acme-challenge.example.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(vals)
	if !slices.Equal(vals, []string{"one", "two"}) {
		t.Fatalf("BIND serves %q, want one and two", vals)
	}

	got, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	soa := 0
	for _, r := range got {
		rr := r.RR()
		switch rr.Type {
		case "TXT":
			texts = append(texts, rr.Name+"="+rr.Data)
		case "SOA":
			soa++
		}
	}
	slices.Sort(texts)
	want := []string{"_acme-challenge.www=" + long, "_acme-challenge=one", "_acme-challenge=two"}
	if !slices.Equal(texts, want) || soa != 1 {
		t.Errorf("GetRecords TXT = %q (%d SOA), want %q and one SOA", texts, soa, want)
	}

	if _, err := p.DeleteRecords(ctx, "example.test", recs); err != nil {
		t.Fatal(err)
	}
	left, err := ns.TXTRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("TXT records left after DeleteRecords: %q", left)
	}
	// Deleting what is gone is no change.
	if _, err := p.DeleteRecords(ctx, "example.test", recs); err != nil {
		t.Errorf("deleting records that are gone: %v", err)
	}
}

func TestSetRecordsReplacesTheRecordSet(t *testing.T) {
	ns := bind.Start(t, bind.Options{})
	p := bindProvider(t, ns, nil).(libdns.RecordSetter)
	ctx := context.Background()
	if _, err := p.SetRecords(ctx, "example.test", []libdns.Record{txt("_acme-challenge", "a"), txt("_acme-challenge", "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetRecords(ctx, "example.test", []libdns.Record{txt("_acme-challenge", "c")}); err != nil {
		t.Fatal(err)
	}
	vals, err := ns.TXT(ctx, "_acme-challenge.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vals, []string{"c"}) {
		t.Errorf("BIND serves %q, want only c", vals)
	}
}

func TestRefusedKeySaysTheKeyWasRefused(t *testing.T) {
	ns := bind.Start(t, bind.Options{})
	wrong := "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldCB3cm9uZyE=" // base64, not the server's
	for _, tc := range []struct {
		name   string
		mutate func(*rfc2136.Config)
		code   string
	}{
		{"wrong secret", func(c *rfc2136.Config) { c.TSIGSecret = wrong }, "BADSIG"},
		{"unknown key name", func(c *rfc2136.Config) { c.TSIGKey = "nobody" }, "BADKEY"},
		{"other algorithm", func(c *rfc2136.Config) { c.TSIGAlgorithm = "hmac-sha512" }, "BADKEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := bindProvider(t, ns, tc.mutate)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err := p.AppendRecords(ctx, "example.test", []libdns.Record{txt("_acme-challenge", "x")})
			if err == nil {
				t.Fatal("AppendRecords succeeded with a key the server does not accept")
			}
			if !errors.Is(err, rfc2136.ErrKeyRefused) {
				t.Errorf("error %q does not wrap ErrKeyRefused", err)
			}
			if !strings.Contains(err.Error(), "refused TSIG key") || !strings.Contains(err.Error(), tc.code) {
				t.Errorf("error %q does not say the key was refused (%s)", err, tc.code)
			}
			if errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
				t.Errorf("the refusal came as a timeout: %v", err)
			}
			if dnsprovider.IsTransientAPIError(err) {
				t.Errorf("a refused key counts as transient: %v", err)
			}
			if strings.Contains(err.Error(), ns.Secret()) || strings.Contains(err.Error(), wrong) {
				t.Errorf("error shows the secret: %v", err)
			}
			_, err = p.(libdns.RecordGetter).GetRecords(ctx, "example.test")
			if !errors.Is(err, rfc2136.ErrKeyRefused) {
				t.Errorf("GetRecords error %v does not wrap ErrKeyRefused", err)
			}
		})
	}
	if left, err := ns.TXTRecords(context.Background()); err != nil || len(left) != 0 {
		t.Errorf("records written with a refused key: %q, %v", left, err)
	}
}

func TestUnsignedUpdateRefusedNamesTheFix(t *testing.T) {
	ns := bind.Start(t, bind.Options{})
	p := bindProvider(t, ns, func(c *rfc2136.Config) { c.TSIGKey, c.TSIGSecret = "", "" })
	_, err := p.AppendRecords(context.Background(), "example.test", []libdns.Record{txt("_acme-challenge", "x")})
	if err == nil || !strings.Contains(err.Error(), "REFUSED") || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("unsigned update: %v, want REFUSED naming the unsigned update", err)
	}
}

func TestUpdateOfAZoneTheServerDoesNotServe(t *testing.T) {
	ns := bind.Start(t, bind.Options{})
	p := bindProvider(t, ns, nil)
	_, err := p.AppendRecords(context.Background(), "example.org", []libdns.Record{txt("_acme-challenge", "x")})
	if err == nil || !strings.Contains(err.Error(), "not authoritative for zone \"example.org\"") || errors.Is(err, rfc2136.ErrKeyRefused) {
		t.Fatalf("update of a zone the server does not serve: %v, want an error saying it is not authoritative (and not that the key was refused)", err)
	}
}

func TestUnreachableNameserverIsTransient(t *testing.T) {
	ns := bind.Start(t, bind.Options{})
	addr := ns.Addr()
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := rfc2136.New(rfc2136.Config{Nameserver: addr, TSIGKey: "k", TSIGSecret: "c2VjcmV0", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.AppendRecords(context.Background(), "example.test", []libdns.Record{txt("_acme-challenge", "x")})
	if err == nil || !dnsprovider.IsTransientAPIError(err) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("AppendRecords to a stopped server = %v, want a transient error naming %s", err, addr)
	}
}
