package dnsprovider

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/libdns/libdns"
)

func mustRoute(t *testing.T, routes map[string]Provider) Provider {
	t.Helper()
	p, err := Route(routes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// txtNames returns the absolute names of the TXT records s holds in zone.
func txtNames(t *testing.T, s *scripted, zone string) []string {
	t.Helper()
	recs, err := s.mem.GetRecords(context.Background(), zone)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, libdns.AbsoluteName(r.RR().Name, zone))
	}
	slices.Sort(out)
	return out
}

func TestRouteSendsEachZoneToItsProviderLongestZoneFirst(t *testing.T) {
	ctx := context.Background()
	com := newScripted(t, "example.com.")
	sub := newScripted(t, "sub.example.com.", "deep.sub.example.com.")
	org := newScripted(t, "example.org.")
	r := mustRoute(t, map[string]Provider{"Example.COM.": com, "sub.example.com": sub, " example.org ": org})
	writes := []struct {
		zone string
		to   *scripted
	}{
		{"example.com.", com},
		{"sub.example.com.", sub},
		{"deep.sub.example.com", sub}, // a delegated subzone goes with its parent's route
		{"EXAMPLE.org.", org},
	}
	for _, w := range writes {
		if _, err := r.AppendRecords(ctx, w.zone, []libdns.Record{txt("_acme-challenge", "v")}); err != nil {
			t.Fatalf("append in %s: %v", w.zone, err)
		}
	}
	if com.count("append") != 1 || sub.count("append") != 2 || org.count("append") != 1 {
		t.Fatalf("appends: com %d, sub %d, org %d; want 1, 2, 1", com.count("append"), sub.count("append"), org.count("append"))
	}
	if got := txtNames(t, sub, "deep.sub.example.com."); !slices.Equal(got, []string{"_acme-challenge.deep.sub.example.com."}) {
		t.Fatalf("deep.sub.example.com holds %v", got)
	}
	if _, err := r.DeleteRecords(ctx, "example.org.", []libdns.Record{txt("_acme-challenge", "v")}); err != nil {
		t.Fatal(err)
	}
	if org.count("delete") != 1 || com.count("delete")+sub.count("delete") != 0 || len(txtNames(t, org, "example.org.")) != 0 {
		t.Fatal("the delete did not go to example.org's provider alone")
	}
	if got := Name(r); got != "route(example.com=dnsprovider, example.org=dnsprovider, sub.example.com=dnsprovider)" {
		t.Errorf("Name = %q", got)
	}
}

func TestRouteRefusesNamesNoRouteCoversBeforeAnyCall(t *testing.T) {
	ctx := context.Background()
	com := newScripted(t, "example.com.", "sub.example.com.")
	sub := newScripted(t, "sub.example.com.")
	r := mustRoute(t, map[string]Provider{"example.com": com, "sub.example.com": sub})
	tests := []struct {
		name string
		zone string
		rec  libdns.Record
		want error
		msg  string
	}{
		{"zone without route", "example.net.", txt("_acme-challenge", "v"), ErrNoRoute, `zone "example.net."`},
		{"suffix that is not a subdomain", "notexample.com.", txt("x", "v"), ErrNoRoute, "add a route"},
		{"parent of a route", "com.", txt("example", "v"), ErrNoRoute, "add a route"},
		{"empty zone", "", txt("x", "v"), ErrNoRoute, "add a route"},
		{"record outside its zone", "example.com.", txt("_acme-challenge.example.net.", "v"), ErrZoneNotAllowed, "not inside the zone"},
		{"name under a more specific route in the parent zone", "example.com.", txt("_acme-challenge.www.sub", "v"), ErrNoRoute, "the route for sub.example.com covers the name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, op := range []string{"append", "delete", "set"} {
				var err error
				switch op {
				case "append":
					_, err = r.AppendRecords(ctx, tt.zone, []libdns.Record{tt.rec})
				case "delete":
					_, err = r.DeleteRecords(ctx, tt.zone, []libdns.Record{tt.rec})
				case "set":
					_, err = r.(libdns.RecordSetter).SetRecords(ctx, tt.zone, []libdns.Record{tt.rec})
				}
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("%s: err = %v; want %v containing %q", op, err, tt.want, tt.msg)
				}
				if !strings.Contains(err.Error(), "routes: example.com=dnsprovider, sub.example.com=dnsprovider") {
					t.Errorf("%s: error %q does not list the routes", op, err)
				}
			}
		})
	}
	for _, s := range []*scripted{com, sub} {
		for _, op := range []string{"append", "delete", "set"} {
			if s.count(op) != 0 {
				t.Fatalf("a provider was called (%s) for a refused write", op)
			}
		}
	}
	if _, err := r.(libdns.RecordGetter).GetRecords(ctx, "example.net."); !errors.Is(err, ErrNoRoute) || com.count("get")+sub.count("get") != 0 {
		t.Fatalf("GetRecords outside the routes: %v", err)
	}
}

func TestRouteListsOnlyZonesInsideEachProvidersRoutes(t *testing.T) {
	com := newScripted(t, "example.com.", "sub.example.com.", "other.test.")
	sub := newScripted(t, "sub.example.com.", "deep.sub.example.com.", "example.com.")
	r := mustRoute(t, map[string]Provider{"example.com": com, "sub.example.com": sub})
	zones, err := r.(libdns.ZoneLister).ListZones(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range zones {
		names = append(names, z.Name)
	}
	slices.Sort(names)
	if want := []string{"deep.sub.example.com.", "example.com.", "sub.example.com."}; !slices.Equal(names, want) {
		t.Fatalf("ListZones = %v, want %v", names, want)
	}
}

func TestRouteKeepsOptionalInterfacesOnlyWhenEveryRoutedProviderHasThem(t *testing.T) {
	s := newScripted(t, "example.com.", "example.org.")
	tests := []struct {
		name       string
		a, b       Provider
		wg, ws, wl bool
	}{
		{"all and all", adGSL{ad{s}}, adGSL{ad{s}}, true, true, true},
		{"all and getter+lister", adGSL{ad{s}}, adGL{ad{s}}, true, false, true},
		{"getter and setter", adG{ad{s}}, adS{ad{s}}, false, false, false},
		{"bare and all", ad{s}, adGSL{ad{s}}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for what, p := range map[string]Provider{
				"Route":  mustRoute(t, map[string]Provider{"example.com": tt.a, "example.org": tt.b}),
				"Mirror": mustMirror(t, tt.a, tt.b),
			} {
				g, s, l := interfaces(p)
				if g != tt.wg || s != tt.ws || l != tt.wl {
					t.Errorf("%s has getter/setter/lister %t/%t/%t, want %t/%t/%t", what, g, s, l, tt.wg, tt.ws, tt.wl)
				}
				if u, ok := p.(interface{ Unwrap() Provider }); !ok || u.Unwrap() != nil {
					t.Errorf("%s: Unwrap should exist and return nil", what)
				}
			}
		})
	}
}

func TestRouteRejectsBadRoutes(t *testing.T) {
	s := newScripted(t, "example.com.")
	tests := []struct {
		name   string
		routes map[string]Provider
		want   string
	}{
		{"none", nil, "no routes"},
		{"same zone twice", map[string]Provider{"example.com": s, "EXAMPLE.com.": s}, "are the same zone"},
		{"nil provider", map[string]Provider{"example.com": nil}, `zone "example.com": the provider is nil`},
		{"nil pointer provider", map[string]Provider{"example.com": (*scripted)(nil)}, "the provider is nil"},
		{"not a zone", map[string]Provider{"*.example.com": s}, `"*.example.com" is not a zone name`},
		{"empty zone", map[string]Provider{"": s}, `"" is not a zone name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Route(tt.routes)
			if err == nil || p != nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Route: %v, %v; want an error containing %q", p, err, tt.want)
			}
		})
	}
}
