package testacme

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Hosting is a second, independent copy of a world's zone served by its own
// nameservers: the zone as a second DNS provider hosts it (multi-provider
// DNS, as when Route 53 and Cloudflare both serve a zone). Its data is its
// own: records written through its Provider are served only by its
// nameservers, and records written into the world's zones only by the
// world's. The zone's NS records, in the world and in the copy, name the
// nameservers of both groups, so a DNS-01 solver that asks every nameserver
// asks both.
type Hosting struct {
	zone     string
	zones    *Zones
	provider *Provider
	servers  []*DNSServer
}

// StartHosting makes zone, which the world serves, hosted a second time:
// it starts a server for each of nameservers on the world's DNS port at its
// Addr (any 127.x.y.z), each answering from a copy of the zone that starts
// empty, and adds the nameservers to the zone's NS records. Host names
// inside a served zone get address records (in the world and in the copy),
// so that the nameservers can be found. The world stops the servers when it
// closes.
func (w *World) StartHosting(zone string, nameservers ...NameServer) (*Hosting, error) {
	if len(nameservers) == 0 {
		return nil, errors.New("testacme: StartHosting: give the nameservers of the second hosting")
	}
	fqdn, err := canonicalName(zone)
	if err != nil {
		return nil, fmt.Errorf("testacme: StartHosting: zone: %w", err)
	}
	rrs, err := w.zones.Records(fqdn)
	if err != nil {
		return nil, fmt.Errorf("testacme: StartHosting: %w", err)
	}
	_, port, err := net.SplitHostPort(w.DNSAddr())
	if err != nil {
		return nil, err
	}
	// The world's nameservers keep their address records; both groups
	// together are the zone's NS set.
	var union []NameServer
	for _, rr := range rrs {
		if rr.Type == "NS" && rr.Name == "@" {
			union = append(union, NameServer{Host: rr.Data})
		}
	}
	for i, ns := range nameservers {
		if !ns.Addr.IsValid() {
			return nil, fmt.Errorf("testacme: StartHosting: nameserver %d (%s) has no address", i, ns.Host)
		}
		union = append(union, ns)
	}
	h := &Hosting{zone: fqdn, zones: NewZones()}
	h.provider = NewProvider(h.zones)
	if err := h.zones.AddZone(fqdn, withAddrs(union, w.zones)...); err != nil {
		return nil, fmt.Errorf("testacme: StartHosting: %w", err)
	}
	for _, ns := range nameservers {
		s, err := w.startServer(h.zones, net.JoinHostPort(ns.Addr.String(), port))
		if err != nil {
			return nil, fmt.Errorf("testacme: StartHosting: nameserver %s: %w", ns.Host, err)
		}
		h.servers = append(h.servers, s)
	}
	if err := w.zones.SetNameServers(fqdn, union...); err != nil {
		return nil, fmt.Errorf("testacme: StartHosting: %w", err)
	}
	return h, nil
}

// withAddrs returns nameservers with the addresses the world's zone
// publishes for those that have none given.
func withAddrs(nameservers []NameServer, zones *Zones) []NameServer {
	out := make([]NameServer, len(nameservers))
	for i, ns := range nameservers {
		out[i] = ns
		if ns.Addr.IsValid() {
			continue
		}
		host, err := canonicalName(ns.Host)
		if err != nil {
			continue
		}
		if zn := zones.load().zoneFor(host); zn != nil {
			for _, r := range zn.recs {
				if r.name == host && (r.typ == "A" || r.typ == "AAAA") {
					if a, err := netip.ParseAddr(r.data); err == nil {
						out[i].Addr = a
						break
					}
				}
			}
		}
	}
	return out
}

// Zone returns the hosted zone's name, with trailing dot.
func (h *Hosting) Zone() string { return h.zone }

// Zones returns the copy of the zone that this hosting serves.
func (h *Hosting) Zones() *Zones { return h.zones }

// Provider returns a libdns provider that writes into this hosting's copy
// of the zone only.
func (h *Hosting) Provider() *Provider { return h.provider }

// Servers returns this hosting's nameservers.
func (h *Hosting) Servers() []*DNSServer { return h.servers }

// Pause pauses every nameserver of this hosting (see DNSServer.Pause): the
// whole provider lags.
func (h *Hosting) Pause() {
	for _, s := range h.servers {
		s.Pause()
	}
}

// Resume resumes every nameserver of this hosting.
func (h *Hosting) Resume() {
	for _, s := range h.servers {
		s.Resume()
	}
}

// TXT returns the values of the TXT records at fqdn in this hosting's copy.
func (h *Hosting) TXT(fqdn string) []string { return h.zones.TXT(fqdn) }

// String names the hosting and its nameservers, for test messages.
func (h *Hosting) String() string {
	addrs := make([]string, len(h.servers))
	for i, s := range h.servers {
		addrs[i] = s.Addr()
	}
	return "hosting of " + h.zone + " on " + strings.Join(addrs, ", ")
}
