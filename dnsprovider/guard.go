package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/libdns/libdns"
)

// ErrZoneNotAllowed is returned (wrapped) by a Guard for a call outside its
// allowed zones.
var ErrZoneNotAllowed = errors.New("outside the allowed zones")

// Guard returns p confined to the given zones (least privilege): a call for a
// zone that is not one of zones or below one of them (a delegated subzone),
// or for a record whose name is not inside the call's zone, fails with an
// error wrapping ErrZoneNotAllowed before p is called. Names are compared
// case-insensitively, with or without the trailing dot.
//
// Reads are confined too: GetRecords outside the zones fails the same way,
// and ListZones returns only the allowed zones and their subzones. Guard with
// no zones refuses every call.
func Guard(p Provider, zones ...string) Provider {
	p = orNil(p)
	g := &guard{inner: p}
	for _, z := range zones {
		if c := canonical(strings.TrimSpace(z)); c != "" {
			g.zones = append(g.zones, c)
		}
	}
	g.label = label(fmt.Sprintf("dnsprovider.Guard(%s, zones: %s)", describe(p), strings.Join(g.zones, ", ")))
	return expose(g, p)
}

type guard struct {
	label
	inner Provider
	zones []string // canonical
}

func (g *guard) Unwrap() Provider     { return g.inner }
func (g *guard) ProviderName() string { return Name(g.inner) }

func (g *guard) allowedZone(zone string) bool {
	c := canonical(zone)
	if c == "" {
		return false
	}
	for _, z := range g.zones {
		if within(c, z) {
			return true
		}
	}
	return false
}

func (g *guard) allowedList() string {
	if len(g.zones) == 0 {
		return "no zones are allowed"
	}
	return "allowed: " + strings.Join(g.zones, ", ")
}

// check returns an error for a call outside the allowed zones.
func (g *guard) check(op, zone string, recs []libdns.Record) error {
	if !g.allowedZone(zone) {
		return fmt.Errorf("dnsprovider: guard refused %s in zone %q: zone %w (%s); add it to the guard's zones if certfleet should manage it",
			op, zone, ErrZoneNotAllowed, g.allowedList())
	}
	cz := canonical(zone)
	for _, rec := range recs {
		if rec == nil {
			return fmt.Errorf("dnsprovider: guard refused %s in zone %q: nil record", op, zone)
		}
		rr := rec.RR()
		if name := absName(rr, zone); !within(name, cz) {
			return fmt.Errorf("dnsprovider: guard refused %s of %s record %q in zone %q: the name is not inside the zone and so %w (%s)",
				op, rr.Type, rr.Name, zone, ErrZoneNotAllowed, g.allowedList())
		}
	}
	return nil
}

func (g *guard) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := g.check("append", zone, recs); err != nil {
		return nil, err
	}
	return g.inner.AppendRecords(ctx, zone, recs)
}

func (g *guard) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := g.check("delete", zone, recs); err != nil {
		return nil, err
	}
	return g.inner.DeleteRecords(ctx, zone, recs)
}

func (g *guard) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := g.check("set", zone, recs); err != nil {
		return nil, err
	}
	s, ok := g.inner.(libdns.RecordSetter)
	if !ok {
		return nil, &OpError{Provider: Name(g.inner), Op: "set", Zone: zone, Err: ErrNotSupported}
	}
	return s.SetRecords(ctx, zone, recs)
}

func (g *guard) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	if err := g.check("get", zone, nil); err != nil {
		return nil, err
	}
	r, ok := g.inner.(libdns.RecordGetter)
	if !ok {
		return nil, &OpError{Provider: Name(g.inner), Op: "get", Zone: zone, Err: ErrNotSupported}
	}
	return r.GetRecords(ctx, zone)
}

func (g *guard) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	l, ok := g.inner.(libdns.ZoneLister)
	if !ok {
		return nil, &OpError{Provider: Name(g.inner), Op: "list", Err: ErrNotSupported}
	}
	all, err := l.ListZones(ctx)
	if err != nil {
		return nil, err
	}
	var out []libdns.Zone
	for _, z := range all {
		if g.allowedZone(z.Name) {
			out = append(out, z)
		}
	}
	return out, nil
}
