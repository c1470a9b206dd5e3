package dns01

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEHops bounds how many CNAME records are followed from an
// _acme-challenge name to the record that is written.
const maxCNAMEHops = 8

// zoneCacheTTL is how long a zone and its nameservers, once found, are
// reused: long enough for the burst of challenges of one Start, short
// enough that a change of delegation is seen at the next renewal.
const zoneCacheTTL = time.Minute

// queryTimeout bounds one DNS exchange with one server.
const queryTimeout = 2 * time.Second

// zoneInfo is a zone and its authoritative nameservers.
type zoneInfo struct {
	name        string       // canonical FQDN with trailing dot
	nameservers []nameserver // from the zone's NS records
}

// nameserver is one authoritative nameserver of a zone.
type nameserver struct {
	host  string   // FQDN with trailing dot
	addrs []string // "ip:port", IPv4 first
}

// lookup finds zones, CNAME targets and nameserver addresses through
// recursive resolvers, and queries servers directly, over UDP with TCP
// fallback.
type lookup struct {
	resolvers []string // "host:port"
	nsPort    string   // port authoritative nameservers are queried on

	mu     sync.Mutex
	zones  map[string]cachedZone  // by the name the zone was looked up for
	probes map[string]*reachProbe // by nameserver address
}

type cachedZone struct {
	zone    *zoneInfo
	expires time.Time
}

// systemResolvers reads the resolvers of the system (/etc/resolv.conf).
func systemResolvers() ([]string, error) {
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, err
	}
	if len(conf.Servers) == 0 {
		return nil, errors.New("/etc/resolv.conf names no nameserver")
	}
	out := make([]string, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		out = append(out, net.JoinHostPort(s, conf.Port))
	}
	return out, nil
}

// exchange sends q to server ("host:port") over UDP, and again over TCP if the
// answer was truncated or UDP failed. It honours ctx's deadline and
// cancellation.
func exchange(ctx context.Context, q *dns.Msg, server string) (*dns.Msg, error) {
	r, err := exchangeOver(ctx, "udp", q, server)
	if err == nil && !r.Truncated {
		return r, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r, tcpErr := exchangeOver(ctx, "tcp", q, server)
	if tcpErr != nil {
		if err != nil {
			return nil, fmt.Errorf("%w (over UDP: %w)", tcpErr, err)
		}
		return nil, tcpErr
	}
	return r, nil
}

func exchangeOver(ctx context.Context, network string, q *dns.Msg, server string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: queryTimeout}
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// miekg/dns honours only the deadline; closing the connection makes
	// cancellation end the exchange too.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r, err
}

// newQuery returns a query for name and type; recursive asks the server to
// recurse (for resolvers; authoritative servers are asked without).
func newQuery(name string, qtype uint16, recursive bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = recursive
	q.SetEdns0(1232, false)
	return q
}

// resolve asks the resolvers in turn until one gives a usable answer
// (NOERROR or NXDOMAIN).
func (l *lookup) resolve(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	var errs []error
	for _, server := range l.resolvers {
		r, err := exchange(ctx, newQuery(name, qtype, true), server)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("resolver %s: %w", server, err))
		case r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError:
			errs = append(errs, fmt.Errorf("resolver %s answered %s", server, dns.RcodeToString[r.Rcode]))
		default:
			return r, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("looking up %s %s: %w", dns.TypeToString[qtype], name, errors.Join(errs...))
}

// followCNAME returns the name that a TXT record for name must be written
// at: name itself, or the end of the chain of CNAME records that starts
// there (a delegated _acme-challenge).
func (l *lookup) followCNAME(ctx context.Context, name string) (string, error) {
	cur := canonicalFQDN(name)
	seen := map[string]bool{cur: true}
	for range maxCNAMEHops {
		r, err := l.resolve(ctx, cur, dns.TypeCNAME)
		if err != nil {
			return "", err
		}
		next := ""
		for _, rr := range r.Answer {
			if c, ok := rr.(*dns.CNAME); ok && canonicalFQDN(c.Hdr.Name) == cur {
				next = canonicalFQDN(c.Target)
				break
			}
		}
		if next == "" {
			return cur, nil
		}
		if seen[next] {
			return "", fmt.Errorf("the CNAME records at %s form a loop through %s: fix the delegation of %s", name, next, name)
		}
		seen[next] = true
		cur = next
	}
	return "", fmt.Errorf("more than %d CNAME records follow each other from %s: shorten the delegation chain", maxCNAMEHops, name)
}

// zoneFor returns the zone that holds name and, if withNS, its
// nameservers, from the cache or by asking the resolvers.
func (l *lookup) zoneFor(ctx context.Context, name string, withNS bool) (*zoneInfo, error) {
	name = canonicalFQDN(name)
	l.mu.Lock()
	c, ok := l.zones[name]
	l.mu.Unlock()
	if ok && time.Now().Before(c.expires) && (!withNS || c.zone.nameservers != nil) {
		return c.zone, nil
	}
	zone, err := l.findZone(ctx, name)
	if err != nil {
		return nil, err
	}
	z := &zoneInfo{name: zone}
	if withNS {
		if z.nameservers, err = l.findNameservers(ctx, zone); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	if l.zones == nil {
		l.zones = make(map[string]cachedZone)
	}
	now := time.Now()
	for k, v := range l.zones { // keep the cache small
		if now.After(v.expires) {
			delete(l.zones, k)
		}
	}
	l.zones[name] = cachedZone{zone: z, expires: now.Add(zoneCacheTTL)}
	l.mu.Unlock()
	return z, nil
}

// findZone walks up from name to the zone apex: the first name with an SOA
// record. A negative answer carries the zone's SOA in its authority
// section, which usually ends the walk at the first query.
func (l *lookup) findZone(ctx context.Context, name string) (string, error) {
	for cur := name; ; {
		r, err := l.resolve(ctx, cur, dns.TypeSOA)
		if err != nil {
			return "", fmt.Errorf("finding the DNS zone of %s: %w", name, err)
		}
		for _, rr := range r.Answer {
			if soa, ok := rr.(*dns.SOA); ok && canonicalFQDN(soa.Hdr.Name) == cur {
				return cur, nil
			}
		}
		if len(r.Answer) == 0 {
			for _, rr := range r.Ns {
				if soa, ok := rr.(*dns.SOA); ok {
					if z := canonicalFQDN(soa.Hdr.Name); dns.IsSubDomain(z, cur) {
						return z, nil
					}
				}
			}
		}
		if cur == "." {
			return "", fmt.Errorf("finding the DNS zone of %s: no SOA record at any of its parent names (resolvers: %s): is the domain registered and delegated?",
				name, strings.Join(l.resolvers, ", "))
		}
		if i := strings.IndexByte(cur, '.'); i >= 0 && i < len(cur)-1 {
			cur = cur[i+1:]
		} else {
			cur = "."
		}
	}
}

// findNameservers returns the nameservers of zone with their addresses.
func (l *lookup) findNameservers(ctx context.Context, zone string) ([]nameserver, error) {
	r, err := l.resolve(ctx, zone, dns.TypeNS)
	if err != nil {
		return nil, fmt.Errorf("finding the nameservers of zone %s: %w", zone, err)
	}
	var hosts []string
	for _, rr := range r.Answer {
		if ns, ok := rr.(*dns.NS); ok && canonicalFQDN(ns.Hdr.Name) == zone {
			if h := canonicalFQDN(ns.Ns); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("finding the nameservers of zone %s: no NS records (resolvers: %s)", zone, strings.Join(l.resolvers, ", "))
	}
	slices.Sort(hosts)
	out := make([]nameserver, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		glue := glueAddrs(r.Extra, h)
		wg.Go(func() {
			out[i] = nameserver{host: h}
			addrs := glue
			if len(addrs) == 0 {
				addrs, errs[i] = l.addresses(ctx, h)
			}
			for _, a := range addrs {
				out[i].addrs = append(out[i].addrs, net.JoinHostPort(a.String(), l.nsPort))
			}
		})
	}
	wg.Wait()
	var usable []nameserver
	for i, ns := range out {
		if len(ns.addrs) > 0 {
			usable = append(usable, ns)
		} else if errs[i] == nil {
			errs[i] = fmt.Errorf("nameserver %s has no address", ns.host)
		}
	}
	if len(usable) == 0 {
		return nil, fmt.Errorf("finding the nameservers of zone %s: %w", zone, errors.Join(errs...))
	}
	// A nameserver without an address cannot be asked; the others can.
	return usable, nil
}

// glueAddrs returns the addresses of host in an answer's additional section.
func glueAddrs(extra []dns.RR, host string) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, rr := range extra {
		if canonicalFQDN(rr.Header().Name) != host {
			continue
		}
		switch a := rr.(type) {
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				v4 = append(v4, ip)
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
				v6 = append(v6, ip)
			}
		}
	}
	return append(v4, v6...)
}

// addresses looks up the A and AAAA records of host, IPv4 first.
func (l *lookup) addresses(ctx context.Context, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := l.resolve(ctx, host, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, glueAddrs(r.Answer, host)...)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// txtAt asks server for the TXT records at name and returns their values
// and the answer in short ("TXT \"v\"", "no TXT records", "NXDOMAIN").
// authoritative says whether the server is asked as an authoritative
// nameserver (no recursion; the answer must be authoritative) or as a
// resolver.
func txtAt(ctx context.Context, server, name string, authoritative bool) (values []string, answer string, err error) {
	r, err := exchange(ctx, newQuery(name, dns.TypeTXT, !authoritative), server)
	if err != nil {
		return nil, "", err
	}
	switch {
	case r.Rcode == dns.RcodeNameError:
		return nil, "NXDOMAIN", nil
	case r.Rcode != dns.RcodeSuccess:
		return nil, dns.RcodeToString[r.Rcode], fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
	case authoritative && !r.Authoritative:
		return nil, "without authority", errors.New("answered without authority: it is not (or no longer) a nameserver of the zone")
	}
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok && canonicalFQDN(t.Hdr.Name) == canonicalFQDN(name) {
			values = append(values, strings.Join(t.Txt, ""))
		}
	}
	if len(values) == 0 {
		return nil, "no TXT records", nil
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	return values, "TXT " + strings.Join(quoted, " "), nil
}

// canonicalFQDN returns name in lower case with a trailing dot.
func canonicalFQDN(name string) string {
	return strings.ToLower(dns.Fqdn(name))
}

// portString validates a port setting: 0 means def.
func portString(port, def int) (string, error) {
	switch {
	case port == 0:
		return strconv.Itoa(def), nil
	case port < 0 || port > 65535:
		return "", fmt.Errorf("%d is not a port number (1 to 65535; 0 for the default %d)", port, def)
	}
	return strconv.Itoa(port), nil
}
