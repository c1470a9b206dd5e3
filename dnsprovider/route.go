package dnsprovider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libdns/libdns"
)

// ErrNoRoute is returned (wrapped) by a provider from Route for a call that
// no route covers.
var ErrNoRoute = errors.New("no route covers the zone")

// Route returns a provider that sends each call to the provider of its zone:
// routes maps a zone ("example.com", with or without the trailing dot, any
// case) to the provider that hosts it, so that one program can write to
// zones kept with different providers or accounts — two Cloudflare
// accounts, Route 53 for one zone and RFC 2136 for another, a dedicated
// validation zone that _acme-challenge names are delegated to by CNAME.
//
// A route covers its zone and every name below it, delegated subzones
// included; when several routes cover a call's zone, the longest one wins
// (sub.example.com before example.com). A call is matched by its zone (the
// DNS zone holding the records, which the DNS-01 solver finds from SOA
// records); a call that no route covers, a record whose name is outside the
// call's zone, or a record under a more specific route than the call's zone
// (the route names a zone that DNS does not delegate) is refused with an
// error wrapping ErrNoRoute or ErrZoneNotAllowed before any provider is
// called, the error listing the routes.
//
// ListZones returns the zones each provider lists inside its routes. The
// provider returned has the optional libdns interfaces (RecordGetter,
// RecordSetter, ZoneLister) that every routed provider has. Its Unwrap
// returns nil: it wraps several providers, not one.
//
// Route fails when routes is empty, names an invalid zone or the same zone
// twice, or maps a zone to a nil provider.
func Route(routes map[string]Provider) (Provider, error) {
	if len(routes) == 0 {
		return nil, errors.New("dnsprovider: Route: no routes: map at least one zone to the provider that hosts it")
	}
	r := &router{}
	seen := map[string]string{}
	var errs []error
	for zone, p := range routes {
		c := canonical(strings.TrimSpace(zone))
		switch {
		case c == "" || strings.ContainsAny(c, " \t,=*") || strings.HasPrefix(c, ".") || strings.Contains(c, ".."):
			errs = append(errs, fmt.Errorf("dnsprovider: Route: %q is not a zone name such as example.com", zone))
			continue
		case seen[c] != "":
			errs = append(errs, fmt.Errorf("dnsprovider: Route: %q and %q are the same zone: give each zone one route", seen[c], zone))
			continue
		case orNil(p) == (nilProvider{}):
			errs = append(errs, fmt.Errorf("dnsprovider: Route: zone %q: the provider is nil", zone))
			continue
		}
		seen[c] = zone
		r.routes = append(r.routes, route{zone: c, p: p})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Longest zone first, so that the first route that covers a name is the
	// most specific one.
	slices.SortFunc(r.routes, func(a, b route) int {
		return cmp.Or(cmp.Compare(len(b.zone), len(a.zone)), strings.Compare(a.zone, b.zone))
	})
	inners := make([]Provider, len(r.routes))
	parts := make([]string, len(r.routes))
	for i, rt := range r.routes {
		inners[i] = rt.p
		parts[i] = rt.zone + ": " + describe(rt.p)
	}
	r.label = label("dnsprovider.Route(" + strings.Join(parts, ", ") + ")")
	return expose(r, inners...), nil
}

type route struct {
	zone string // canonical
	p    Provider
}

type router struct {
	label
	routes []route // longest zone first
}

// Unwrap returns nil: a router wraps several providers.
func (r *router) Unwrap() Provider { return nil }

// ProviderName lists the routes, for errors and logs.
func (r *router) ProviderName() string { return "route(" + r.list() + ")" }

// list describes the routes, sorted: "example.com=cloudflare, example.org=route53".
func (r *router) list() string {
	parts := make([]string, len(r.routes))
	for i, rt := range r.routes {
		parts[i] = rt.zone + "=" + Name(rt.p)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// covering returns the most specific route that covers the canonical name.
func (r *router) covering(name string) (route, bool) {
	for _, rt := range r.routes {
		if within(name, rt.zone) {
			return rt, true
		}
	}
	return route{}, false
}

// pick returns the provider for a call in zone about recs, or the reason
// the call is refused.
func (r *router) pick(op, zone string, recs []libdns.Record) (Provider, error) {
	cz := canonical(zone)
	rt, ok := r.covering(cz)
	if cz == "" || !ok {
		return nil, fmt.Errorf("dnsprovider: route refused %s in zone %q: %w (routes: %s); add a route for the zone",
			op, zone, ErrNoRoute, r.list())
	}
	for _, rec := range recs {
		if rec == nil {
			return nil, fmt.Errorf("dnsprovider: route refused %s in zone %q: nil record", op, zone)
		}
		rr := rec.RR()
		name := absName(rr, zone)
		if !within(name, cz) {
			return nil, fmt.Errorf("dnsprovider: route refused %s of %s record %q in zone %q: the name is not inside the zone and so %w (routes: %s)",
				op, rr.Type, rr.Name, zone, ErrZoneNotAllowed, r.list())
		}
		if other, _ := r.covering(name); other.zone != rt.zone {
			return nil, fmt.Errorf("dnsprovider: route refused %s of %s record %q in zone %q: the route for %s covers the name, but DNS keeps it in zone %s, which is routed to %s: %w (routes: %s); make %s a zone of its own (delegate it), or remove its route",
				op, rr.Type, rr.Name, zone, other.zone, cz, Name(rt.p), ErrNoRoute, r.list(), other.zone)
		}
	}
	return rt.p, nil
}

func (r *router) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p, err := r.pick("append", zone, recs)
	if err != nil {
		return nil, err
	}
	return p.AppendRecords(ctx, zone, recs)
}

func (r *router) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p, err := r.pick("delete", zone, recs)
	if err != nil {
		return nil, err
	}
	return p.DeleteRecords(ctx, zone, recs)
}

func (r *router) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p, err := r.pick("set", zone, recs)
	if err != nil {
		return nil, err
	}
	s, ok := p.(libdns.RecordSetter)
	if !ok {
		return nil, &OpError{Provider: Name(p), Op: "set", Zone: zone, Err: ErrNotSupported}
	}
	return s.SetRecords(ctx, zone, recs)
}

func (r *router) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	p, err := r.pick("get", zone, nil)
	if err != nil {
		return nil, err
	}
	g, ok := p.(libdns.RecordGetter)
	if !ok {
		return nil, &OpError{Provider: Name(p), Op: "get", Zone: zone, Err: ErrNotSupported}
	}
	return g.GetRecords(ctx, zone)
}

// ListZones asks each routed provider for its zones and keeps those its
// routes cover.
func (r *router) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	lists := make([][]libdns.Zone, len(r.routes))
	errs := each(len(r.routes), func(i int) error {
		l, ok := r.routes[i].p.(libdns.ZoneLister)
		if !ok {
			return &OpError{Provider: Name(r.routes[i].p), Op: "list", Err: ErrNotSupported}
		}
		var err error
		lists[i], err = l.ListZones(ctx)
		return err
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []libdns.Zone
	seen := map[string]bool{}
	for i, rt := range r.routes {
		for _, z := range lists[i] {
			c := canonical(z.Name)
			if owner, ok := r.covering(c); ok && owner.zone == rt.zone && !seen[c] {
				seen[c] = true
				out = append(out, z)
			}
		}
	}
	return out, nil
}
