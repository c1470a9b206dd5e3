package testacme

import (
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds how many CNAME records one answer follows.
const maxCNAMEChain = 8

// answer builds the reply of an authoritative server holding s to req.
//
// For names inside a served zone it answers like a real authoritative
// server: AA set; the records asked for; a CNAME at the name followed inside
// the served zones; NODATA or NXDOMAIN with the zone's SOA in the authority
// section (never REFUSED or SERVFAIL, which would abort a client's zone walk).
// Names above a served zone ("test." above "example.test.") get an empty
// NOERROR reply without AA, so that a walk up the labels carries on; any
// other name is REFUSED.
func (s *zoneSet) answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	zn := s.zoneFor(name)
	if zn == nil || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		if zn == nil && s.isAncestor(name) {
			return m
		}
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	seen := map[string]bool{}
	for range maxCNAMEChain {
		seen[name] = true
		found, exists, target := zn.lookup(name, q.Qtype)
		m.Answer = append(m.Answer, found...)
		if target == "" {
			if len(found) == 0 {
				if !exists {
					m.Rcode = dns.RcodeNameError
				}
				m.Ns = append(m.Ns, zn.negativeSOA())
			}
			break
		}
		next := s.zoneFor(target)
		if next == nil || seen[target] {
			break // out of our zones (the client's resolver follows it) or a loop
		}
		name, zn = target, next
	}
	for _, rr := range m.Answer {
		if ns, ok := rr.(*dns.NS); ok {
			m.Extra = append(m.Extra, s.addresses(ns.Ns)...)
		}
	}
	return m
}

// lookup returns the records of type qtype at name (a canonical name inside
// zn). When there are none but a CNAME is at name, it returns the CNAME and
// its target to follow. exists reports whether name exists at all (it has
// records, is the apex, or has names below it).
func (zn *zone) lookup(name string, qtype uint16) (found []dns.RR, exists bool, target string) {
	exists = name == zn.name
	var cname *dns.CNAME
	for _, r := range zn.recs {
		if r.name != name {
			if !exists && strings.HasSuffix(r.name, "."+name) {
				exists = true
			}
			continue
		}
		exists = true
		rr, err := r.dnsRR()
		if err != nil {
			continue // checked before storing; cannot happen
		}
		if qtype == dns.TypeANY || rr.Header().Rrtype == qtype {
			found = append(found, rr)
		} else if c, ok := rr.(*dns.CNAME); ok {
			cname = c
		}
	}
	if name == zn.name && (qtype == dns.TypeSOA || qtype == dns.TypeANY) {
		found = append([]dns.RR{zn.soa()}, found...)
	}
	if len(found) == 0 && cname != nil {
		return []dns.RR{cname}, true, cname.Target
	}
	return found, exists, ""
}

// soa synthesizes the zone's SOA record.
//
// Refresh is 0 on purpose: certmagic caches zone lookups process-wide for
// Refresh seconds, and worlds that come and go in one test binary must not
// see each other's zones through that cache.
func (zn *zone) soa() *dns.SOA {
	mname := "ns1." + zn.name
	for _, r := range zn.recs {
		if r.name == zn.name && r.typ == "NS" {
			mname = dns.Fqdn(r.data)
			break
		}
	}
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zn.name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns:      mname,
		Mbox:    "hostmaster." + zn.name,
		Serial:  zn.serial,
		Refresh: 0,
		Retry:   1,
		Expire:  60,
		Minttl:  0,
	}
}

// negativeSOA is the SOA for the authority section of a negative answer,
// its TTL the negative-caching TTL (RFC 2308).
func (zn *zone) negativeSOA() dns.RR {
	soa := zn.soa()
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// addresses returns the A and AAAA records at host if it lies inside a served
// zone.
func (s *zoneSet) addresses(host string) []dns.RR {
	host = strings.ToLower(host)
	zn := s.zoneFor(host)
	if zn == nil {
		return nil
	}
	var out []dns.RR
	for _, r := range zn.recs {
		if r.name == host && (r.typ == "A" || r.typ == "AAAA") {
			if rr, err := r.dnsRR(); err == nil {
				out = append(out, rr)
			}
		}
	}
	return out
}
