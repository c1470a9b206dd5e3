package apifake

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/libdns/libdns"
)

// Memory is a minimal in-memory libdns provider, a Backend for the fakes in
// tests that need no real DNS server. Zones must exist (NewMemory) before
// records are written to them. It is safe for concurrent use.
type Memory struct {
	mu    sync.Mutex
	zones map[string][]libdns.RR // canonical zone name with trailing dot -> records, relative names
}

// NewMemory returns a Memory holding the given (empty) zones.
func NewMemory(zones ...string) *Memory {
	m := &Memory{zones: make(map[string][]libdns.RR)}
	for _, z := range zones {
		m.zones[fqdn(z)] = nil
	}
	return m
}

// fqdn returns name in lower case with one trailing dot.
func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

func (m *Memory) zone(zone string) ([]libdns.RR, string, error) {
	z := fqdn(zone)
	recs, ok := m.zones[z]
	if !ok {
		return nil, z, fmt.Errorf("memory: zone %q does not exist", zone)
	}
	return recs, z, nil
}

// normalize returns rec with a relative, lower-case name.
func normalize(rec libdns.Record, zone string) libdns.RR {
	rr := rec.RR()
	rr.Name = strings.ToLower(libdns.RelativeName(libdns.AbsoluteName(rr.Name, zone), zone))
	return rr
}

func parsed(rrs []libdns.RR) []libdns.Record {
	out := make([]libdns.Record, 0, len(rrs))
	for _, rr := range rrs {
		if r, err := rr.Parse(); err == nil {
			out = append(out, r)
		} else {
			out = append(out, rr)
		}
	}
	return out
}

// GetRecords returns the zone's records.
func (m *Memory) GetRecords(_ context.Context, zone string) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs, _, err := m.zone(zone)
	if err != nil {
		return nil, err
	}
	return parsed(recs), nil
}

// AppendRecords adds records; a record identical to one in the zone (name,
// type and data) is not added twice.
func (m *Memory) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	have, z, err := m.zone(zone)
	if err != nil {
		return nil, err
	}
	var added []libdns.RR
	for _, rec := range recs {
		rr := normalize(rec, z)
		if !slices.ContainsFunc(have, func(h libdns.RR) bool { return sameRR(h, rr) }) {
			have = append(have, rr)
		}
		added = append(added, rr)
	}
	m.zones[z] = have
	return parsed(added), nil
}

// SetRecords replaces, for each (name, type) in recs, the zone's records
// with those in recs.
func (m *Memory) SetRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	have, z, err := m.zone(zone)
	if err != nil {
		return nil, err
	}
	var set []libdns.RR
	for _, rec := range recs {
		set = append(set, normalize(rec, z))
	}
	have = slices.DeleteFunc(have, func(h libdns.RR) bool {
		return slices.ContainsFunc(set, func(s libdns.RR) bool { return s.Name == h.Name && s.Type == h.Type })
	})
	m.zones[z] = append(have, set...)
	return parsed(set), nil
}

// DeleteRecords deletes the records that match recs (an empty type, TTL or
// data in an input record matches any) and returns those deleted.
func (m *Memory) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	have, z, err := m.zone(zone)
	if err != nil {
		return nil, err
	}
	var deleted []libdns.RR
	for _, rec := range recs {
		want := normalize(rec, z)
		have = slices.DeleteFunc(have, func(h libdns.RR) bool {
			match := h.Name == want.Name && (want.Type == "" || h.Type == want.Type) &&
				(want.TTL == 0 || h.TTL == want.TTL) && (want.Data == "" || h.Data == want.Data)
			if match {
				deleted = append(deleted, h)
			}
			return match
		})
	}
	m.zones[z] = have
	return parsed(deleted), nil
}

// ListZones returns the zones, sorted by name.
func (m *Memory) ListZones(context.Context) ([]libdns.Zone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var zones []libdns.Zone
	for z := range m.zones {
		zones = append(zones, libdns.Zone{Name: z})
	}
	slices.SortFunc(zones, func(a, b libdns.Zone) int { return strings.Compare(a.Name, b.Name) })
	return zones, nil
}

func sameRR(a, b libdns.RR) bool {
	return strings.EqualFold(a.Name, b.Name) && a.Type == b.Type && a.Data == b.Data
}
