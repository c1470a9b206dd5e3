package googleclouddns

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi"
	"github.com/libdns/libdns"
)

// group is the records of one record set (absolute name and type).
type group struct {
	name, typ string
	ttl       int64
	values    []string // libdns data: unquoted text for TXT
	recs      []libdns.Record
}

// groups splits recs by record set, in order of first appearance.
func groups(zone string, recs []libdns.Record) []*group {
	var out []*group
	for _, rec := range recs {
		rr := rec.RR()
		name := fqdn(libdns.AbsoluteName(rr.Name, fqdn(zone)))
		typ := strings.ToUpper(rr.Type)
		i := slices.IndexFunc(out, func(g *group) bool { return g.name == name && g.typ == typ })
		if i < 0 {
			ttl := int64(rr.TTL / time.Second)
			if ttl <= 0 {
				ttl = 300
			}
			out = append(out, &group{name: name, typ: typ, ttl: ttl})
			i = len(out) - 1
		}
		out[i].values = append(out[i].values, rr.Data)
		out[i].recs = append(out[i].recs, rec)
	}
	return out
}

// encode returns v as Cloud DNS rrdata: TXT text quoted, in strings of at
// most 255 bytes; other types as given.
func encode(typ, v string) string {
	if typ != "TXT" {
		return v
	}
	var b strings.Builder
	for first := true; first || v != ""; first = false {
		n := min(len(v), 255)
		if !first {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		for _, c := range []byte(v[:n]) {
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < ' ' || c >= 0x7f:
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		v = v[n:]
	}
	return b.String()
}

// decode returns the libdns data of Cloud DNS rrdata: for TXT, the
// character strings (quoted or not, with \X and \DDD escapes) joined.
func decode(typ, d string) string {
	if typ != "TXT" {
		return d
	}
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '"':
			inQuote = !inQuote
		case c == '\\' && i+4 <= len(d) && isDigits(d[i+1:i+4]):
			n, _ := strconv.Atoi(d[i+1 : i+4])
			b.WriteByte(byte(n))
			i += 3
		case c == '\\' && i+1 < len(d):
			b.WriteByte(d[i+1])
			i++
		case !inQuote && (c == ' ' || c == '\t'):
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isDigits reports whether s (three bytes) is a decimal byte value.
func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	n, _ := strconv.Atoi(s)
	return n < 256
}

// values returns the decoded data of a record set (none for nil).
func values(rs *rrset) []string {
	if rs == nil {
		return nil
	}
	out := make([]string, 0, len(rs.Rrdatas))
	for _, d := range rs.Rrdatas {
		out = append(out, decode(rs.Type, d))
	}
	return out
}

// toLibdns returns the records of a record set, named relative to zone.
func toLibdns(rs rrset, zone string) []libdns.Record {
	var out []libdns.Record
	for _, v := range values(&rs) {
		rr := libdns.RR{Name: libdns.RelativeName(fqdn(rs.Name), fqdn(zone)), Type: rs.Type, TTL: time.Duration(rs.TTL) * time.Second, Data: v}
		if rec, err := rr.Parse(); err == nil {
			out = append(out, rec)
		} else {
			out = append(out, rr)
		}
	}
	return out
}

// AppendRecords adds records to the zone. A value already in its record
// set counts as added: appends are idempotent, so a retry after a lost
// answer does not fail. A new value joins a record set with the set's TTL.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("googleclouddns", "append", zone, func() error {
		mz, err := p.managedZone(ctx, zone)
		if err != nil {
			return err
		}
		for _, g := range groups(zone, recs) {
			err := p.update(ctx, mz, g.name, g.typ, func(cur *rrset) (*rrset, bool) {
				have := values(cur)
				next := &rrset{Kind: "dns#resourceRecordSet", Name: g.name, Type: g.typ, TTL: g.ttl}
				if cur != nil {
					next.TTL, next.Rrdatas = cur.TTL, slices.Clone(cur.Rrdatas)
				}
				for _, v := range g.values {
					if !slices.Contains(have, v) {
						have = append(have, v)
						next.Rrdatas = append(next.Rrdatas, encode(g.typ, v))
					}
				}
				return next, cur == nil || len(next.Rrdatas) != len(cur.Rrdatas)
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

// DeleteRecords deletes the records from the zone that match recs (an
// input record without data matches every value of its record set) and
// returns those deleted; records not in the zone are ignored.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("googleclouddns", "delete", zone, func() error {
		mz, err := p.managedZone(ctx, zone)
		if err != nil {
			return err
		}
		for _, g := range groups(zone, recs) {
			if g.typ == "" {
				return fmt.Errorf("deleting %s: a record type is required", g.name)
			}
			var deleted []libdns.Record
			err := p.update(ctx, mz, g.name, g.typ, func(cur *rrset) (*rrset, bool) {
				deleted = nil
				if cur == nil {
					return nil, false
				}
				next := *cur
				next.Rrdatas = nil
				gone := *cur
				gone.Rrdatas = nil
				for i, v := range values(cur) {
					if slices.Contains(g.values, v) || slices.Contains(g.values, "") {
						gone.Rrdatas = append(gone.Rrdatas, cur.Rrdatas[i])
					} else {
						next.Rrdatas = append(next.Rrdatas, cur.Rrdatas[i])
					}
				}
				deleted = toLibdns(gone, zone)
				return &next, len(gone.Rrdatas) > 0
			})
			if err != nil {
				return err
			}
			out = append(out, deleted...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetRecords replaces the record set of each (name, type) in recs with the
// values in recs.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("googleclouddns", "set", zone, func() error {
		mz, err := p.managedZone(ctx, zone)
		if err != nil {
			return err
		}
		for _, g := range groups(zone, recs) {
			err := p.update(ctx, mz, g.name, g.typ, func(cur *rrset) (*rrset, bool) {
				next := &rrset{Kind: "dns#resourceRecordSet", Name: g.name, Type: g.typ, TTL: g.ttl}
				for _, v := range g.values {
					next.Rrdatas = append(next.Rrdatas, encode(g.typ, v))
				}
				return next, cur == nil || cur.TTL != next.TTL || !slices.Equal(cur.Rrdatas, next.Rrdatas)
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

// GetRecords returns the zone's records.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	var out []libdns.Record
	err := cloudapi.Protect("googleclouddns", "get", zone, func() error {
		mz, err := p.managedZone(ctx, zone)
		if err != nil {
			return err
		}
		return p.list(ctx, "managedZones/"+url.PathEscape(mz)+"/rrsets", nil, func(page *listPage) {
			for _, rs := range page.Rrsets {
				out = append(out, toLibdns(rs, zone)...)
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListZones lists the project's public managed zones.
func (p *Provider) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	var out []libdns.Zone
	err := cloudapi.Protect("googleclouddns", "list", "", func() error {
		return p.list(ctx, "managedZones", nil, func(page *listPage) {
			for _, z := range page.ManagedZones {
				if z.Visibility == "" || z.Visibility == "public" {
					out = append(out, libdns.Zone{Name: fqdn(z.DNSName)})
				}
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var (
	_ libdns.RecordGetter = (*Provider)(nil)
	_ libdns.RecordSetter = (*Provider)(nil)
	_ libdns.ZoneLister   = (*Provider)(nil)
)
