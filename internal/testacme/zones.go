package testacme

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// ErrNoZone is returned (wrapped) when a zone that is not served is named.
var ErrNoZone = errors.New("zone not served")

// NameServer is one authoritative nameserver of a zone: an NS record at the
// zone apex and, when Host lies inside a served zone, an address record for
// Host.
type NameServer struct {
	// Host is the nameserver's host name, e.g. "ns1.example.test".
	Host string
	// Addr is published as an A (or AAAA) record for Host when Host lies
	// inside a served zone. The zero value publishes no address record.
	Addr netip.Addr
}

// Zones is the DNS data served by DNSServer and written by Provider: a set of
// zones, each with its records. It is safe for concurrent use and may be
// shared by any number of servers and providers.
//
// Every change publishes a new immutable version of the data, so a server
// answers each query from one consistent version, and a paused server can
// keep answering from the version it saw when it was paused. Each change to
// a zone increments the serial of its SOA record.
//
// The zero value is not usable; call NewZones.
type Zones struct {
	mu  sync.Mutex // serializes writers
	cur atomic.Pointer[zoneSet]
}

// zoneSet is one immutable version of all zones: never modified once
// published.
type zoneSet struct {
	zones map[string]*zone // by lower-case FQDN with trailing dot
}

type zone struct {
	name   string // lower-case FQDN with trailing dot
	serial uint32
	recs   []record
}

// record is one resource record: a name inside its zone, an upper-case type,
// and data in the unescaped zone-file form libdns uses.
type record struct {
	name string // lower-case FQDN with trailing dot
	typ  string
	ttl  time.Duration
	data string
}

// NewZones returns an empty set of zones.
func NewZones() *Zones {
	z := &Zones{}
	z.cur.Store(&zoneSet{zones: map[string]*zone{}})
	return z
}

func (z *Zones) load() *zoneSet { return z.cur.Load() }

// AddZone starts serving the zone name (with or without trailing dot) with
// the given nameservers at its apex. With no nameservers, the zone gets one:
// ns1.<zone> at 127.0.0.1.
func (z *Zones) AddZone(name string, nameservers ...NameServer) error {
	fqdn, err := canonicalName(name)
	if err != nil {
		return fmt.Errorf("testacme: zone name: %w", err)
	}
	if fqdn == "." {
		return errors.New("testacme: zone name: the root zone cannot be served; name a zone such as example.test")
	}
	if len(nameservers) == 0 {
		nameservers = []NameServer{{Host: "ns1." + fqdn, Addr: netip.AddrFrom4([4]byte{127, 0, 0, 1})}}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	old := z.load()
	if _, ok := old.zones[fqdn]; ok {
		return fmt.Errorf("testacme: zone %q is already served", fqdn)
	}
	next := &zoneSet{zones: maps.Clone(old.zones)}
	next.zones[fqdn] = &zone{name: fqdn, serial: 1}
	if err := next.setNameServers(fqdn, nameservers); err != nil {
		return err
	}
	z.cur.Store(next)
	return nil
}

// SetNameServers replaces the NS records at the apex of zone and publishes
// an address record for each nameserver host that lies inside a served zone
// (replacing the address records already at that host name).
func (z *Zones) SetNameServers(zone string, nameservers ...NameServer) error {
	if len(nameservers) == 0 {
		return fmt.Errorf("testacme: SetNameServers(%q): a zone needs at least one nameserver", zone)
	}
	return z.update(zone, func(s *zoneSet, fqdn string) error {
		return s.setNameServers(fqdn, nameservers)
	})
}

// setNameServers modifies s, which must be a private copy.
func (s *zoneSet) setNameServers(fqdn string, nameservers []NameServer) error {
	type host struct {
		name string
		addr netip.Addr
	}
	hosts := make([]host, 0, len(nameservers))
	for i, ns := range nameservers {
		h, err := canonicalName(ns.Host)
		if err != nil {
			return fmt.Errorf("testacme: nameserver %d of zone %q: Host: %w", i, fqdn, err)
		}
		hosts = append(hosts, host{h, ns.Addr})
	}
	zn := s.own(fqdn)
	zn.recs = slices.DeleteFunc(zn.recs, func(r record) bool { return r.name == fqdn && r.typ == "NS" })
	for _, h := range hosts {
		zn.recs = append(zn.recs, record{name: fqdn, typ: "NS", ttl: time.Hour, data: h.name})
	}
	for _, h := range hosts {
		if !h.addr.IsValid() {
			continue
		}
		hz := s.zoneFor(h.name)
		if hz == nil {
			continue
		}
		hz = s.own(hz.name)
		typ := "A"
		if h.addr.Is6() && !h.addr.Is4In6() {
			typ = "AAAA"
		}
		hz.recs = slices.DeleteFunc(hz.recs, func(r record) bool {
			return r.name == h.name && (r.typ == "A" || r.typ == "AAAA")
		})
		hz.recs = append(hz.recs, record{name: h.name, typ: typ, ttl: time.Hour, data: h.addr.Unmap().String()})
	}
	return nil
}

// own replaces the zone fqdn in s (a private copy) by a private copy of it,
// with its serial incremented, and returns that copy. The zone must exist.
func (s *zoneSet) own(fqdn string) *zone {
	old := s.zones[fqdn]
	zn := &zone{name: old.name, serial: old.serial + 1, recs: slices.Clone(old.recs)}
	s.zones[fqdn] = zn
	return zn
}

// update applies fn to a private copy of the data and publishes the result
// if fn succeeds. zone names the zone fn is about; it must be served.
func (z *Zones) update(zoneName string, fn func(s *zoneSet, fqdn string) error) error {
	fqdn, err := canonicalName(zoneName)
	if err != nil {
		return fmt.Errorf("testacme: zone name: %w", err)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	old := z.load()
	if _, ok := old.zones[fqdn]; !ok {
		return fmt.Errorf("testacme: zone %q: %w (served: %s)", fqdn, ErrNoZone, strings.Join(old.names(), ", "))
	}
	next := &zoneSet{zones: maps.Clone(old.zones)}
	if err := fn(next, fqdn); err != nil {
		return err
	}
	z.cur.Store(next)
	return nil
}

// Names returns the served zones as FQDNs with trailing dot, sorted.
func (z *Zones) Names() []string { return z.load().names() }

func (s *zoneSet) names() []string {
	return slices.Sorted(maps.Keys(s.zones))
}

// Records returns the records of zone (with or without trailing dot), names
// relative to the zone as libdns has them ("@" for the apex). The SOA record,
// which the server synthesizes, is not included.
func (z *Zones) Records(zone string) ([]libdns.RR, error) {
	s := z.load()
	fqdn, err := canonicalName(zone)
	if err != nil {
		return nil, fmt.Errorf("testacme: zone name: %w", err)
	}
	zn, ok := s.zones[fqdn]
	if !ok {
		return nil, fmt.Errorf("testacme: zone %q: %w (served: %s)", fqdn, ErrNoZone, strings.Join(s.names(), ", "))
	}
	out := make([]libdns.RR, 0, len(zn.recs))
	for _, r := range zn.recs {
		out = append(out, r.libdns(fqdn))
	}
	return out, nil
}

// TXT returns the values of the TXT records at fqdn (with or without
// trailing dot), in the order they were added; nil if there are none. CNAME
// records are not followed.
func (z *Zones) TXT(fqdn string) []string {
	name, err := canonicalName(fqdn)
	if err != nil {
		return nil
	}
	zn := z.load().zoneFor(name)
	if zn == nil {
		return nil
	}
	var out []string
	for _, r := range zn.recs {
		if r.name == name && r.typ == "TXT" {
			out = append(out, r.data)
		}
	}
	return out
}

// Serial returns the SOA serial of zone, which grows with every change to it,
// or 0 if the zone is not served.
func (z *Zones) Serial(zone string) uint32 {
	fqdn, err := canonicalName(zone)
	if err != nil {
		return 0
	}
	if zn, ok := z.load().zones[fqdn]; ok {
		return zn.serial
	}
	return 0
}

// zoneFor returns the most specific served zone that contains name (a
// canonical FQDN), or nil.
func (s *zoneSet) zoneFor(name string) *zone {
	for n := name; ; {
		if zn, ok := s.zones[n]; ok {
			return zn
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return nil
		}
		n = n[i+1:]
	}
}

// isAncestor reports whether name (canonical) lies above a served zone, like
// "test." above "example.test.".
func (s *zoneSet) isAncestor(name string) bool {
	for zn := range s.zones {
		if name == "." || strings.HasSuffix(zn, "."+name) {
			return true
		}
	}
	return false
}

// canonicalName validates a domain name and returns it in lower case with a
// trailing dot.
func canonicalName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("%q is not a valid domain name", name)
	}
	return strings.ToLower(dns.Fqdn(name)), nil
}

// libdns converts r to the libdns form, named relative to zone.
func (r record) libdns(zone string) libdns.RR {
	return libdns.RR{Name: libdns.RelativeName(r.name, zone), TTL: r.ttl, Type: r.typ, Data: r.data}
}

// dnsRR converts r to its wire form. It fails on data that the record type
// cannot hold; records are checked with it before they are stored.
func (r record) dnsRR() (dns.RR, error) {
	hdr := dns.RR_Header{Name: r.name, Class: dns.ClassINET, Ttl: uint32(r.ttl / time.Second)}
	switch r.typ {
	case "A", "AAAA":
		ip, err := netip.ParseAddr(r.data)
		if err != nil {
			return nil, fmt.Errorf("%s record data %q is not an IP address", r.typ, r.data)
		}
		if r.typ == "A" {
			if !ip.Is4() {
				return nil, fmt.Errorf("record of type A: data %q is not an IPv4 address", r.data)
			}
			hdr.Rrtype = dns.TypeA
			return &dns.A{Hdr: hdr, A: ip.AsSlice()}, nil
		}
		if !ip.Is6() || ip.Is4In6() {
			return nil, fmt.Errorf("record of type AAAA: data %q is not an IPv6 address", r.data)
		}
		hdr.Rrtype = dns.TypeAAAA
		return &dns.AAAA{Hdr: hdr, AAAA: ip.AsSlice()}, nil
	case "TXT":
		hdr.Rrtype = dns.TypeTXT
		return &dns.TXT{Hdr: hdr, Txt: splitTXT(r.data)}, nil
	case "CNAME", "NS":
		target, err := canonicalName(r.data)
		if err != nil {
			return nil, fmt.Errorf("%s record target: %w", r.typ, err)
		}
		if r.typ == "CNAME" {
			hdr.Rrtype = dns.TypeCNAME
			return &dns.CNAME{Hdr: hdr, Target: target}, nil
		}
		hdr.Rrtype = dns.TypeNS
		return &dns.NS{Hdr: hdr, Ns: target}, nil
	case "SOA":
		return nil, errors.New("the server synthesizes the SOA record; it cannot be stored")
	case "":
		return nil, errors.New("record type is empty")
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", r.name, hdr.Ttl, r.typ, r.data))
	if err != nil {
		return nil, fmt.Errorf("%s record data %q: %w", r.typ, r.data, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("%s record data %q is empty", r.typ, r.data)
	}
	return rr, nil
}

// splitTXT splits a TXT value into the character-strings of at most 255
// octets the wire format allows, each escaped the way miekg/dns expects
// (it reads a backslash in a character-string as the start of an escape).
func splitTXT(s string) []string {
	var out []string
	for {
		n := min(len(s), 255)
		out = append(out, strings.ReplaceAll(s[:n], `\`, `\\`))
		s = s[n:]
		if s == "" {
			return out
		}
	}
}
