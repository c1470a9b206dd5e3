package testacme

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/libdns/libdns"
)

// Provider is a libdns provider that writes into a Zones, so that what it
// writes is served at once by every DNSServer of those zones (except paused
// ones). It counts its calls.
//
// Zones may be named with or without trailing dot; record names are relative
// to the zone as libdns specifies ("@" for the apex; a name ending in a dot is
// taken as fully qualified and must lie inside the zone). CNAME, NS and other
// targets are taken as fully qualified. Every method is atomic: on error the
// zone is unchanged.
type Provider struct {
	zones                              *Zones
	gets, appends, sets, deletes, list atomic.Int64
}

// Compile-time checks that Provider is a full libdns provider.
var (
	_ libdns.RecordGetter   = (*Provider)(nil)
	_ libdns.RecordAppender = (*Provider)(nil)
	_ libdns.RecordSetter   = (*Provider)(nil)
	_ libdns.RecordDeleter  = (*Provider)(nil)
	_ libdns.ZoneLister     = (*Provider)(nil)
)

// NewProvider returns a provider writing into zones, with its own counters.
func NewProvider(zones *Zones) *Provider {
	return &Provider{zones: zones}
}

// ProviderCalls counts the calls made to a Provider, failed ones included.
type ProviderCalls struct {
	Get, Append, Set, Delete, ListZones int64
}

// Calls returns how many calls of each kind the provider has received.
func (p *Provider) Calls() ProviderCalls {
	return ProviderCalls{
		Get:       p.gets.Load(),
		Append:    p.appends.Load(),
		Set:       p.sets.Load(),
		Delete:    p.deletes.Load(),
		ListZones: p.list.Load(),
	}
}

// GetRecords returns all records of zone except the synthesized SOA.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	p.gets.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rrs, err := p.zones.Records(zone)
	if err != nil {
		return nil, err
	}
	return parsed(rrs), nil
}

// AppendRecords adds recs to zone. A record identical in name, type and data
// to one already there is not added twice (a DNS RRset holds no duplicates)
// but is still returned.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.appends.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []libdns.RR
	err := p.zones.update(zone, func(s *zoneSet, fqdn string) error {
		add, err := toRecords(fqdn, recs)
		if err != nil {
			return err
		}
		zn := s.own(fqdn)
		for _, r := range add {
			if !slices.ContainsFunc(zn.recs, r.sameData) {
				zn.recs = append(zn.recs, r)
			}
			out = append(out, r.libdns(fqdn))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testacme: AppendRecords: %w", err)
	}
	return parsed(out), nil
}

// SetRecords makes recs the only records of their (name, type) pairs in
// zone, leaving other records alone.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.sets.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []libdns.RR
	err := p.zones.update(zone, func(s *zoneSet, fqdn string) error {
		set, err := toRecords(fqdn, recs)
		if err != nil {
			return err
		}
		zn := s.own(fqdn)
		zn.recs = slices.DeleteFunc(zn.recs, func(old record) bool {
			return slices.ContainsFunc(set, func(r record) bool { return r.name == old.name && r.typ == old.typ })
		})
		for _, r := range set {
			if !slices.ContainsFunc(zn.recs, r.sameData) {
				zn.recs = append(zn.recs, r)
			}
			out = append(out, r.libdns(fqdn))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testacme: SetRecords: %w", err)
	}
	return parsed(out), nil
}

// DeleteRecords deletes the records of zone that match one of recs: same
// name, and same type, TTL and data where those are given (non-empty,
// non-zero). It returns the records deleted.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.deletes.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []libdns.RR
	err := p.zones.update(zone, func(s *zoneSet, fqdn string) error {
		patterns := make([]record, 0, len(recs))
		for i, rec := range recs {
			rr := rec.RR()
			name, err := absName(rr.Name, fqdn)
			if err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
			pat := record{name: name, typ: strings.ToUpper(rr.Type), ttl: rr.TTL, data: rr.Data}
			if (pat.typ == "CNAME" || pat.typ == "NS") && pat.data != "" {
				pat.data = strings.ToLower(strings.TrimSuffix(pat.data, ".")) + "."
			}
			patterns = append(patterns, pat)
		}
		zn := s.own(fqdn)
		zn.recs = slices.DeleteFunc(zn.recs, func(r record) bool {
			for _, pat := range patterns {
				if r.name == pat.name &&
					(pat.typ == "" || r.typ == pat.typ) &&
					(pat.ttl == 0 || r.ttl == pat.ttl) &&
					(pat.data == "" || r.data == pat.data) {
					out = append(out, r.libdns(fqdn))
					return true
				}
			}
			return false
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testacme: DeleteRecords: %w", err)
	}
	return parsed(out), nil
}

// ListZones returns the served zones, names with trailing dot.
func (p *Provider) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	p.list.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names := p.zones.Names()
	out := make([]libdns.Zone, len(names))
	for i, n := range names {
		out[i] = libdns.Zone{Name: n}
	}
	return out, nil
}

// toRecords converts and checks libdns records for zone fqdn.
func toRecords(fqdn string, recs []libdns.Record) ([]record, error) {
	out := make([]record, 0, len(recs))
	for i, rec := range recs {
		rr := rec.RR()
		name, err := absName(rr.Name, fqdn)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		r := record{name: name, typ: strings.ToUpper(rr.Type), ttl: rr.TTL, data: rr.Data}
		if r.typ == "CNAME" || r.typ == "NS" {
			r.data = strings.ToLower(strings.TrimSuffix(r.data, ".")) + "."
		}
		if _, err := r.dnsRR(); err != nil {
			return nil, fmt.Errorf("record %d (%s %s): %w", i, rr.Name, rr.Type, err)
		}
		if _, err := rr.Parse(); err != nil {
			return nil, fmt.Errorf("record %d (%s %s): %w", i, rr.Name, rr.Type, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// absName turns a libdns record name relative to zone fqdn into a canonical
// FQDN inside that zone.
func absName(name, fqdn string) (string, error) {
	if name == "" {
		return "", fmt.Errorf(`record name is empty; use "@" for the zone apex %s`, fqdn)
	}
	abs, err := canonicalName(libdns.AbsoluteName(name, fqdn))
	if err != nil {
		return "", fmt.Errorf("record name %q: %w", name, err)
	}
	if abs != fqdn && !strings.HasSuffix(abs, "."+fqdn) {
		return "", fmt.Errorf("record name %q is outside zone %s; names are relative to the zone", name, fqdn)
	}
	return abs, nil
}

// sameData reports whether r and o are the same record, TTL aside.
func (r record) sameData(o record) bool {
	return r.name == o.name && r.typ == o.typ && r.data == o.data
}

// parsed converts records to the typed libdns structs providers return.
func parsed(rrs []libdns.RR) []libdns.Record {
	out := make([]libdns.Record, 0, len(rrs))
	for _, rr := range rrs {
		rec, err := rr.Parse()
		if err != nil {
			out = append(out, rr) // stored records were parsed before; cannot happen
			continue
		}
		out = append(out, rec)
	}
	return out
}
