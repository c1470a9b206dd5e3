package apifake

import (
	"context"
	"net/netip"
	"testing"

	"github.com/libdns/libdns"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMemoryFollowsTheLibdnsContract(t *testing.T) {
	ctx := context.Background()
	m := NewMemory("Example.COM")
	if _, err := m.AppendRecords(ctx, "example.com.", []libdns.Record{txt("a", "1"), txt("A", "1"), txt("a", "2")}); err != nil {
		t.Fatal(err)
	}
	recs, _ := m.GetRecords(ctx, "example.com")
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2 (identical records are kept once)", len(recs))
	}
	del, _ := m.DeleteRecords(ctx, "example.com", []libdns.Record{libdns.RR{Name: "a", Type: "TXT"}})
	if len(del) != 2 {
		t.Fatalf("a delete with empty data deleted %d records, want 2", len(del))
	}
	if _, err := m.AppendRecords(ctx, "missing.org", []libdns.Record{txt("a", "1")}); err == nil {
		t.Fatal("append to a missing zone succeeded")
	}
	if _, err := m.SetRecords(ctx, "example.com", []libdns.Record{libdns.Address{Name: "@", IP: mustAddr(t, "192.0.2.1")}}); err != nil {
		t.Fatal(err)
	}
	zs, _ := m.ListZones(ctx)
	if len(zs) != 1 || zs[0].Name != "example.com." {
		t.Fatalf("ListZones = %v", zs)
	}
}
