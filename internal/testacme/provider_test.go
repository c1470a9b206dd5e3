package testacme_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/libdns/libdns"
)

func newProvider(t *testing.T) (*testacme.Zones, *testacme.Provider) {
	t.Helper()
	zones := testacme.NewZones()
	if err := zones.AddZone("example.test."); err != nil {
		t.Fatal(err)
	}
	return zones, testacme.NewProvider(zones)
}

// challengeRecords returns the records named _acme-challenge, as "type data".
func challengeRecords(t *testing.T, zones *testacme.Zones) []string {
	t.Helper()
	rrs, err := zones.Records("example.test")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range rrs {
		if rr.Name == "_acme-challenge" {
			out = append(out, rr.Type+" "+rr.Data)
		}
	}
	slices.Sort(out)
	return out
}

func TestProviderAppendsAndReturnsTypedRecords(t *testing.T) {
	zones, p := newProvider(t)
	ctx := context.Background()
	got, err := p.AppendRecords(ctx, "example.test", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "a"},
		libdns.RR{Name: "_acme-challenge", Type: "TXT", Data: "b"},
		libdns.Address{Name: "@", IP: netip.MustParseAddr("192.0.2.1")},
		libdns.Address{Name: "v6.example.test.", IP: netip.MustParseAddr("2001:db8::1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("AppendRecords returned %d records, want 4", len(got))
	}
	if txt, ok := got[1].(libdns.TXT); !ok || txt.Text != "b" || txt.Name != "_acme-challenge" {
		t.Errorf("returned %#v, want libdns.TXT named _acme-challenge", got[1])
	}
	if a, ok := got[3].(libdns.Address); !ok || a.Name != "v6" {
		t.Errorf("returned %#v, want libdns.Address named v6 (relative)", got[3])
	}
	if got := zones.TXT("_acme-challenge.example.test."); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("TXT values %q, want [a b]", got)
	}
	// The same record again does not make a duplicate.
	if _, err := p.AppendRecords(ctx, "example.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "a"}}); err != nil {
		t.Fatal(err)
	}
	if got := zones.TXT("_acme-challenge.example.test"); len(got) != 2 {
		t.Errorf("TXT values %q after re-appending a, want 2 values", got)
	}
	all, err := p.GetRecords(ctx, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 { // NS at apex, A of ns1, and the 4 appended
		t.Errorf("GetRecords returned %d records, want 6: %v", len(all), all)
	}
}

func TestProviderSetRecordsReplacesOnlyItsRRsets(t *testing.T) {
	zones, p := newProvider(t)
	ctx := context.Background()
	appendRecords(t, p, "example.test",
		libdns.TXT{Name: "_acme-challenge", Text: "old1"},
		libdns.TXT{Name: "_acme-challenge", Text: "old2"},
		libdns.CNAME{Name: "other", Target: "example.test"})
	if _, err := p.SetRecords(ctx, "example.test", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "new"}}); err != nil {
		t.Fatal(err)
	}
	if got, want := challengeRecords(t, zones), []string{"TXT new"}; !slices.Equal(got, want) {
		t.Errorf("records %q, want %q", got, want)
	}
	rrs, _ := zones.Records("example.test")
	if !slices.ContainsFunc(rrs, func(rr libdns.RR) bool { return rr.Name == "other" && rr.Data == "example.test." }) {
		t.Errorf("records %v: the CNAME at other was touched", rrs)
	}
}

func TestProviderDeleteMatchesGivenFields(t *testing.T) {
	tests := []struct {
		name   string
		delete libdns.Record
		left   []string
	}{
		{"by value", libdns.TXT{Name: "_acme-challenge", Text: "a"}, []string{"CNAME x.example.test.", "TXT b"}},
		{"by type", libdns.RR{Name: "_acme-challenge", Type: "TXT"}, []string{"CNAME x.example.test."}},
		{"by name", libdns.RR{Name: "_acme-challenge"}, nil},
		{"wrong TTL", libdns.TXT{Name: "_acme-challenge", TTL: time.Hour, Text: "a"}, []string{"CNAME x.example.test.", "TXT a", "TXT b"}},
		{"CNAME target without dot", libdns.CNAME{Name: "_acme-challenge", Target: "X.example.test"}, []string{"TXT a", "TXT b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zones, p := newProvider(t)
			appendRecords(t, p, "example.test",
				libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "a"},
				libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "b"},
				libdns.CNAME{Name: "_acme-challenge", Target: "x.example.test."})
			deleted, err := p.DeleteRecords(context.Background(), "example.test", []libdns.Record{tt.delete})
			if err != nil {
				t.Fatal(err)
			}
			left := challengeRecords(t, zones)
			if !slices.Equal(left, tt.left) {
				t.Errorf("left %q, want %q", left, tt.left)
			}
			if len(deleted) != 3-len(left) {
				t.Errorf("returned %d deleted records, want %d", len(deleted), 3-len(left))
			}
		})
	}
}

func TestProviderRejectsBadInputAtomically(t *testing.T) {
	tests := []struct {
		name string
		zone string
		recs []libdns.Record
		is   error
	}{
		{"unknown zone", "example.org", []libdns.Record{libdns.TXT{Name: "x", Text: "v"}}, testacme.ErrNoZone},
		{"bad A data", "example.test", []libdns.Record{libdns.TXT{Name: "x", Text: "v"}, libdns.RR{Name: "x", Type: "A", Data: "not-an-ip"}}, nil},
		{"name outside zone", "example.test", []libdns.Record{libdns.TXT{Name: "x.example.org.", Text: "v"}}, nil},
		{"empty name", "example.test", []libdns.Record{libdns.TXT{Text: "v"}}, nil},
		{"SOA", "example.test", []libdns.Record{libdns.RR{Name: "@", Type: "SOA", Data: "a. b. 1 2 3 4 5"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zones, p := newProvider(t)
			before := zones.Serial("example.test")
			_, err := p.AppendRecords(context.Background(), tt.zone, tt.recs)
			if err == nil {
				t.Fatal("AppendRecords succeeded, want an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v, want one matching %v", err, tt.is)
			}
			if after := zones.Serial("example.test"); after != before {
				t.Errorf("zone changed (serial %d -> %d) by a failed call", before, after)
			}
		})
	}
}

func TestProviderCountsCallsAndListsZones(t *testing.T) {
	_, p := newProvider(t)
	ctx := context.Background()
	appendRecords(t, p, "example.test", libdns.TXT{Name: "x", Text: "v"})
	_, _ = p.AppendRecords(ctx, "nope.test", nil) // failed calls count too
	_, _ = p.DeleteRecords(ctx, "example.test", []libdns.Record{libdns.TXT{Name: "x"}})
	_, _ = p.GetRecords(ctx, "example.test")
	zones, err := p.ListZones(ctx)
	if err != nil || len(zones) != 1 || zones[0].Name != "example.test." {
		t.Errorf("ListZones() = %v, %v; want [example.test.]", zones, err)
	}
	want := testacme.ProviderCalls{Get: 1, Append: 2, Set: 0, Delete: 1, ListZones: 1}
	if got := p.Calls(); got != want {
		t.Errorf("Calls() = %+v, want %+v", got, want)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.AppendRecords(cancelled, "example.test", []libdns.Record{libdns.TXT{Name: "y", Text: "v"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendRecords with a cancelled context: %v, want context.Canceled", err)
	}
}
