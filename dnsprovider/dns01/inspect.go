package dns01

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Inspector asks, one question at a time, what a Solver asks before it
// writes a challenge record: where a CNAME at the _acme-challenge name
// leads, which zone holds a name, which nameservers serve the zone, and
// what a server answers. It is for diagnostics, such as the certfleet
// command's doctor; it caches nothing and writes nothing.
type Inspector struct {
	l *lookup
}

// Nameserver is one authoritative nameserver of a zone.
type Nameserver struct {
	Host  string   // FQDN with trailing dot
	Addrs []string // "ip:port", IPv4 first
}

// NewInspector returns an Inspector that looks names up through resolvers
// (as Config.Resolvers; none: the system's) and queries authoritative
// nameservers on nameserverPort (0: 53).
func NewInspector(resolvers []string, nameserverPort int) (*Inspector, error) {
	l := &lookup{}
	var err error
	if l.nsPort, err = portString(nameserverPort, 53); err != nil {
		return nil, fmt.Errorf("dns01: nameserver port: %w", err)
	}
	for _, r := range resolvers {
		addr, err := resolverAddr(r)
		if err != nil {
			return nil, fmt.Errorf("dns01: resolver: %w", err)
		}
		l.resolvers = append(l.resolvers, addr)
	}
	if len(l.resolvers) == 0 {
		if l.resolvers, err = systemResolvers(); err != nil {
			return nil, fmt.Errorf("dns01: no resolvers given, and the system's cannot be read: %w", err)
		}
	}
	return &Inspector{l: l}, nil
}

// Resolvers returns the resolvers the Inspector asks, as "host:port".
func (i *Inspector) Resolvers() []string { return slices.Clone(i.l.resolvers) }

// FollowCNAME returns the name a TXT record for name must be written at:
// name itself (as an FQDN), or the end of the chain of CNAME records that
// starts there.
func (i *Inspector) FollowCNAME(ctx context.Context, name string) (string, error) {
	return i.l.followCNAME(ctx, name)
}

// FindZone returns the zone (an FQDN) that holds name: the closest
// enclosing name with an SOA record.
func (i *Inspector) FindZone(ctx context.Context, name string) (string, error) {
	return i.l.findZone(ctx, canonicalFQDN(name))
}

// Nameservers returns the authoritative nameservers of zone with their
// addresses; those without an address are left out.
func (i *Inspector) Nameservers(ctx context.Context, zone string) ([]Nameserver, error) {
	nss, err := i.l.findNameservers(ctx, canonicalFQDN(zone))
	if err != nil {
		return nil, err
	}
	out := make([]Nameserver, len(nss))
	for j, ns := range nss {
		out[j] = Nameserver{Host: ns.host, Addrs: slices.Clone(ns.addrs)}
	}
	return out, nil
}

// Resolve asks the resolvers in turn for the records of type qtype at
// name, until one answers NOERROR or NXDOMAIN.
func (i *Inspector) Resolve(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	return i.l.resolve(ctx, name, qtype)
}

// QueryTXT asks server ("ip:port") for the TXT records at name and returns
// their values; none when the name does not exist. authoritative asks it as
// an authoritative nameserver (no recursion; an answer without authority is
// an error) rather than as a resolver.
func QueryTXT(ctx context.Context, server, name string, authoritative bool) ([]string, error) {
	values, _, err := txtAt(ctx, server, name, authoritative)
	return values, err
}

// Exchange sends q to server ("ip:port") over UDP, and over TCP when the
// answer is truncated or UDP fails, bounded by ctx and by 2 seconds per
// attempt.
func Exchange(ctx context.Context, q *dns.Msg, server string) (*dns.Msg, error) {
	return exchange(ctx, q, server)
}

// JournalEntry is a challenge record that the journal in the fleet's
// storage lists: written by a Solver and not yet deleted.
type JournalEntry struct {
	Key     string    // its storage key
	Owner   string    // the id of the Solver that wrote it
	Zone    string    // FQDN with trailing dot
	Name    string    // the record's FQDN, after CNAMEs
	For     string    // the _acme-challenge name, when it differs from Name
	Created time.Time // when it was journaled

	// Orphaned says that its owner's lease has lapsed or is gone: a sweep
	// deletes the record.
	Orphaned bool
}

// Lease is the lease a running Solver keeps in the fleet's storage: a
// member of the fleet.
type Lease struct {
	ID      string        // the Solver's id
	Host    string        // the host it runs on
	PID     int           // its process id
	Started time.Time     // when it started
	Renewed time.Time     // when it last renewed the lease
	Lease   time.Duration // how long each renewal lasts
	Expired bool          // lapsed at the time of reading: the member is gone
}

// Leases returns the leases of the Solvers in storage, sorted by host and
// id; a lease that cannot be read is left out.
func Leases(ctx context.Context, st Storage) ([]Lease, error) {
	keys, err := st.List(ctx, ownersPrefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns01: listing the solvers' leases: %w", err)
	}
	now := time.Now()
	var out []Lease
	for _, k := range keys {
		b, err := st.Load(ctx, ownerKey(path.Base(k)))
		if err != nil {
			continue
		}
		var o ownerRecord
		if json.Unmarshal(b, &o) != nil || o.ID == "" {
			continue
		}
		out = append(out, Lease{ID: o.ID, Host: o.Host, PID: o.PID, Started: o.Started, Renewed: o.Renewed, Lease: o.Lease, Expired: o.Lease <= 0 || o.expired(now)})
	}
	slices.SortFunc(out, func(a, b Lease) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Journal returns the challenge records the journal in storage lists,
// oldest first, each marked Orphaned when its owner's lease has lapsed or
// is gone. An entry that cannot be read is left out.
func Journal(ctx context.Context, st Storage) ([]JournalEntry, error) {
	keys, err := st.List(ctx, journalPrefix, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dns01: listing the DNS-01 journal: %w", err)
	}
	leases, err := Leases(ctx, st)
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	for _, l := range leases {
		alive[l.ID] = !l.Expired
	}
	var out []JournalEntry
	for _, k := range keys {
		key := journalPrefix + "/" + path.Base(k)
		b, err := st.Load(ctx, key)
		if err != nil {
			continue
		}
		var e journalEntry
		if json.Unmarshal(b, &e) != nil || e.Owner == "" || e.Name == "" {
			continue
		}
		out = append(out, JournalEntry{Key: key, Owner: e.Owner, Zone: e.Zone, Name: e.Name, For: e.For, Created: e.Created, Orphaned: !alive[e.Owner]})
	}
	slices.SortFunc(out, func(a, b JournalEntry) int { return a.Created.Compare(b.Created) })
	return out, nil
}
