package azure

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi"
	"github.com/libdns/libdns"
)

// group is the TXT records of one record set.
type group struct {
	rel    string // Azure's relative name: "@" for the apex
	ttl    int64
	values []string
	recs   []libdns.Record
}

// groups splits recs by record set, in order of first appearance; only TXT
// records can be written.
func groups(zone string, recs []libdns.Record) ([]*group, error) {
	var out []*group
	z := zoneName(zone) + "."
	for _, rec := range recs {
		rr := rec.RR()
		if !strings.EqualFold(rr.Type, "TXT") {
			return nil, fmt.Errorf("writing a %s record: certfleet's Azure provider writes TXT records only", rr.Type)
		}
		rel := strings.ToLower(libdns.RelativeName(libdns.AbsoluteName(rr.Name, z), z))
		if rel == "" {
			rel = "@"
		}
		i := slices.IndexFunc(out, func(g *group) bool { return g.rel == rel })
		if i < 0 {
			ttl := int64(rr.TTL / time.Second)
			if ttl <= 0 {
				ttl = 300
			}
			out = append(out, &group{rel: rel, ttl: ttl})
			i = len(out) - 1
		}
		out[i].values = append(out[i].values, rr.Data)
		out[i].recs = append(out[i].recs, rec)
	}
	return out, nil
}

// AppendRecords adds TXT records to the zone. A value already in its record
// set counts as added: appends are idempotent, so a retry after a lost
// answer does not fail. A new value joins a record set with the set's TTL.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("azure", "append", zone, func() error {
		gs, err := groups(zone, recs)
		if err != nil {
			return err
		}
		for _, g := range gs {
			err := p.update(ctx, zone, g.rel, g.ttl, func(cur []string) ([]string, bool) {
				next := slices.Clone(cur)
				for _, v := range g.values {
					if !slices.Contains(next, v) {
						next = append(next, v)
					}
				}
				return next, len(next) != len(cur)
			})
			if err != nil {
				return err
			}
			out = append(out, g.recs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRecords deletes the TXT records from the zone that match recs (an
// input record without text matches every value of its record set) and
// returns those deleted; records not in the zone are ignored. The record
// set goes when its last value goes.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("azure", "delete", zone, func() error {
		gs, err := groups(zone, recs)
		if err != nil {
			return err
		}
		for _, g := range gs {
			var gone []string
			err := p.update(ctx, zone, g.rel, g.ttl, func(cur []string) ([]string, bool) {
				gone = nil
				var next []string
				for _, v := range cur {
					if slices.Contains(g.values, v) || slices.Contains(g.values, "") {
						gone = append(gone, v)
					} else {
						next = append(next, v)
					}
				}
				return next, len(gone) > 0
			})
			if err != nil {
				return err
			}
			for _, v := range gone {
				out = append(out, libdns.TXT{Name: strings.TrimPrefix(g.rel, "@"), Text: v, TTL: time.Duration(g.ttl) * time.Second})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetRecords replaces the TXT record set of each name in recs with the
// values in recs.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("azure", "set", zone, func() error {
		gs, err := groups(zone, recs)
		if err != nil {
			return err
		}
		for _, g := range gs {
			err := p.update(ctx, zone, g.rel, g.ttl, func(cur []string) ([]string, bool) {
				return g.values, !slices.Equal(cur, g.values)
			})
			if err != nil {
				return err
			}
			out = append(out, g.recs...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRecords returns the zone's records, of every type.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("azure", "get", zone, func() error {
		err := list(ctx, p, p.zoneURL(zone)+"/recordsets?api-version="+apiVersion, func(rs recordSet) {
			out = append(out, toLibdns(rs)...)
		})
		return missingParent(err, zone, p)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListZones lists the DNS zones of the resource group.
func (p *Provider) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	var out []libdns.Zone
	err := cloudapi.Protect("azure", "list", "", func() error {
		return list(ctx, p, p.zoneURL("")+"?api-version="+apiVersion, func(z struct {
			Name string `json:"name"`
		}) {
			out = append(out, libdns.Zone{Name: zoneName(z.Name) + "."})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// toLibdns returns the records of a record set in presentation form.
func toLibdns(rs recordSet) []libdns.Record {
	typ := strings.ToUpper(rs.Type[strings.LastIndex(rs.Type, "/")+1:])
	pr := rs.Properties
	var data []string
	switch typ {
	case "TXT":
		data = texts(&rs)
	case "A":
		for _, r := range pr.ARecords {
			data = append(data, r.IPv4Address)
		}
	case "AAAA":
		for _, r := range pr.AAAARecords {
			data = append(data, r.IPv6Address)
		}
	case "CNAME":
		if pr.CNAMERecord != nil {
			data = append(data, pr.CNAMERecord.Cname)
		}
	case "MX":
		for _, r := range pr.MXRecords {
			data = append(data, fmt.Sprintf("%d %s", r.Preference, r.Exchange))
		}
	case "NS":
		for _, r := range pr.NSRecords {
			data = append(data, r.Nsdname)
		}
	case "PTR":
		for _, r := range pr.PTRRecords {
			data = append(data, r.Ptrdname)
		}
	case "SRV":
		for _, r := range pr.SRVRecords {
			data = append(data, fmt.Sprintf("%d %d %d %s", r.Priority, r.Weight, r.Port, r.Target))
		}
	case "CAA":
		for _, r := range pr.CAARecords {
			data = append(data, fmt.Sprintf("%d %s %q", r.Flags, r.Tag, r.Value))
		}
	case "SOA":
		if s := pr.SOARecord; s != nil {
			data = append(data, fmt.Sprintf("%s %s %d %d %d %d %d", s.Host, s.Email, s.SerialNumber, s.RefreshTime, s.RetryTime, s.ExpireTime, s.MinimumTTL))
		}
	}
	var out []libdns.Record
	for _, d := range data {
		rr := libdns.RR{Name: rs.Name, Type: typ, TTL: time.Duration(pr.TTL) * time.Second, Data: d}
		if rec, err := rr.Parse(); err == nil {
			out = append(out, rec)
		} else {
			out = append(out, rr)
		}
	}
	return out
}

var (
	_ libdns.RecordGetter = (*Provider)(nil)
	_ libdns.RecordSetter = (*Provider)(nil)
	_ libdns.ZoneLister   = (*Provider)(nil)
)
