package apifake

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// rrSet is the backend's records of one name and type, as the cloud APIs
// that speak in record sets (Google Cloud DNS, Azure DNS) show them.
type rrSet struct {
	name string // relative to the zone, lower case; "" for the apex
	typ  string
	ttl  time.Duration
	data []string
}

// recordSets groups records into record sets, sorted by name and type.
func recordSets(recs []libdns.Record) []rrSet {
	var out []rrSet
	for _, rec := range recs {
		rr := rec.RR()
		name := strings.ToLower(rr.Name)
		if name == "@" {
			name = ""
		}
		i := slices.IndexFunc(out, func(s rrSet) bool { return s.name == name && s.typ == rr.Type })
		if i < 0 {
			out = append(out, rrSet{name: name, typ: rr.Type, ttl: rr.TTL})
			i = len(out) - 1
		}
		out[i].data = append(out[i].data, rr.Data)
	}
	slices.SortFunc(out, func(a, b rrSet) int { return strings.Compare(a.name+"\x00"+a.typ, b.name+"\x00"+b.typ) })
	return out
}

// find returns the record set (name, typ) of sets.
func find(sets []rrSet, name, typ string) (rrSet, bool) {
	i := slices.IndexFunc(sets, func(s rrSet) bool { return s.name == name && s.typ == typ })
	if i < 0 {
		return rrSet{}, false
	}
	return sets[i], true
}

// rrs returns the set as backend records.
func (s rrSet) rrs() []libdns.RR {
	out := make([]libdns.RR, 0, len(s.data))
	for _, d := range s.data {
		out = append(out, libdns.RR{Name: s.name, Type: s.typ, TTL: s.ttl, Data: d})
	}
	return out
}

// offsetPage returns the page of items that starts at the offset token
// ("" is 0) and the token of the next page ("" for the last).
func offsetPage[T any](items []T, token string, size int) (page []T, next string, ok bool) {
	lo := 0
	if token != "" {
		n, err := strconv.Atoi(token)
		if err != nil || n < 0 {
			return nil, "", false
		}
		lo = min(n, len(items))
	}
	hi := min(lo+size, len(items))
	if hi < len(items) {
		next = strconv.Itoa(hi)
	}
	return items[lo:hi], next, true
}
