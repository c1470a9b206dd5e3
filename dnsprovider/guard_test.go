package dnsprovider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/libdns/libdns"
)

func TestGuardRefusesWritesOutsideAllowedZonesWithoutCallingProvider(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		zone    string
		rec     libdns.Record
		allowed bool
	}{
		{"allowed zone", "example.com.", txt("_acme-challenge", "v"), true},
		{"case and trailing dot ignored", "EXAMPLE.com", txt("_acme-challenge", "v"), true},
		{"delegated subzone", "acme.example.com.", txt("_acme-challenge", "v"), true},
		{"apex record", "example.com.", txt("@", "v"), true},
		{"absolute name inside zone", "example.com.", txt("_acme-challenge.www.example.com.", "v"), true},
		{"other zone", "evil.com.", txt("_acme-challenge", "v"), false},
		{"suffix that is not a subdomain", "notexample.com.", txt("x", "v"), false},
		{"parent of allowed zone", "com.", txt("example", "v"), false},
		{"absolute name outside zone", "example.com.", txt("_acme-challenge.evil.com.", "v"), false},
		{"empty zone", "", txt("x", "v"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inner := newScripted(t, "example.com.", "acme.example.com.", "evil.com.", "notexample.com.", "com.")
			g := Guard(inner, "Example.com.", " other.org ")
			for _, op := range []string{"append", "delete", "set"} {
				var err error
				switch op {
				case "append":
					_, err = g.AppendRecords(ctx, tc.zone, []libdns.Record{tc.rec})
				case "delete":
					_, err = g.DeleteRecords(ctx, tc.zone, []libdns.Record{tc.rec})
				case "set":
					_, err = g.(libdns.RecordSetter).SetRecords(ctx, tc.zone, []libdns.Record{tc.rec})
				}
				if tc.allowed {
					if err != nil || inner.count(op) != 1 {
						t.Fatalf("%s: err %v, provider calls %d; want allowed", op, err, inner.count(op))
					}
					continue
				}
				if !errors.Is(err, ErrZoneNotAllowed) {
					t.Fatalf("%s: err = %v, want ErrZoneNotAllowed", op, err)
				}
				if inner.count(op) != 0 {
					t.Fatalf("%s: the provider was called %d times for a refused write", op, inner.count(op))
				}
				if !strings.Contains(err.Error(), "allowed: example.com, other.org") {
					t.Errorf("error %q does not list the allowed zones", err)
				}
			}
		})
	}
}

func TestGuardConfinesReads(t *testing.T) {
	ctx := context.Background()
	inner := newScripted(t, "example.com.", "sub.example.com.", "evil.com.")
	g := Guard(inner, "example.com")
	if _, err := g.(libdns.RecordGetter).GetRecords(ctx, "evil.com."); !errors.Is(err, ErrZoneNotAllowed) || inner.count("get") != 0 {
		t.Fatalf("GetRecords outside: %v, %d calls", err, inner.count("get"))
	}
	zones, err := g.(libdns.ZoneLister).ListZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range zones {
		names = append(names, z.Name)
	}
	if strings.Join(names, " ") != "example.com. sub.example.com." {
		t.Fatalf("ListZones = %v, want the allowed zone and its subzone", names)
	}
}

func TestGuardWithNoZonesRefusesEverything(t *testing.T) {
	inner := newScripted(t, "example.com.")
	_, err := Guard(inner).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	if !errors.Is(err, ErrZoneNotAllowed) || !strings.Contains(err.Error(), "no zones are allowed") || inner.count("append") != 0 {
		t.Fatalf("err = %v, calls %d", err, inner.count("append"))
	}
}
