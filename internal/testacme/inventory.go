package testacme

import (
	"net"
	"strconv"

	"github.com/libdns/libdns"
)

// DNSPort returns the port of the world's DNS server: the port every
// nameserver of its zones answers on, for a client's nameserver port
// setting (tlsauto.Config.DNSPort, CERTFLEET_DNS_PORT).
func (w *World) DNSPort() int {
	_, p, _ := net.SplitHostPort(w.dns.Addr())
	port, _ := strconv.Atoi(p)
	return port
}

// TXTRecords returns every TXT record of every zone as "fqdn=value", zone
// by zone: what challenge records are left.
func (z *Zones) TXTRecords() []string {
	var out []string
	for _, zone := range z.Names() {
		rrs, err := z.Records(zone)
		if err != nil {
			continue // removed meanwhile
		}
		for _, rr := range rrs {
			if rr.Type == "TXT" {
				out = append(out, libdns.AbsoluteName(rr.Name, zone)+"="+rr.Data)
			}
		}
	}
	return out
}
