package dns01

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// reachCacheTTL is how long the result of probing a nameserver address is
// reused: the challenges of one Start probe each address once.
const reachCacheTTL = time.Minute

// reachProbe is a probe of one nameserver address, done or under way.
type reachProbe struct {
	done    chan struct{} // closed when err and expires are set
	err     error
	expires time.Time
}

// unreachable probes the nameservers of zone, all at once, and returns for
// each nil when one of its addresses answers a query, or else why none did.
// It takes at most queryTimeout (plus the wait for a probe that another
// call started), so that a firewall that drops DNS packets is known within
// seconds rather than at the propagation timeout.
func (l *lookup) unreachable(ctx context.Context, zone string, nss []nameserver) []error {
	errs := make([]error, len(nss))
	var wg sync.WaitGroup
	for i, ns := range nss {
		wg.Go(func() {
			addrErrs := make([]error, len(ns.addrs))
			var each sync.WaitGroup
			for j, addr := range ns.addrs {
				each.Go(func() { addrErrs[j] = l.reach(ctx, zone, addr) })
			}
			each.Wait()
			for _, err := range addrErrs {
				if err == nil {
					return
				}
			}
			errs[i] = errors.Join(addrErrs...)
		})
	}
	wg.Wait()
	return errs
}

// reach reports whether addr answers DNS queries, from the cache or by
// probing it: nil when it does.
func (l *lookup) reach(ctx context.Context, zone, addr string) error {
	l.mu.Lock()
	if l.probes == nil {
		l.probes = make(map[string]*reachProbe)
	}
	p := l.probes[addr]
	mine := false
	if p == nil || (isClosed(p.done) && time.Now().After(p.expires)) {
		p = &reachProbe{done: make(chan struct{})}
		l.probes[addr] = p
		mine = true
	}
	l.mu.Unlock()
	if mine {
		p.err = probe(ctx, zone, addr)
		p.expires = time.Now().Add(reachCacheTTL)
		close(p.done)
		return p.err
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// probe asks addr for the SOA record of zone over UDP and TCP at once; any
// answer, even a refusal, shows that addr can be reached. It is bounded by
// queryTimeout and not by ctx, so that its result holds for every caller
// waiting on it.
func probe(ctx context.Context, zone, addr string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
	defer cancel()
	var results [2]error
	var wg sync.WaitGroup
	for i, network := range []string{"udp", "tcp"} {
		wg.Go(func() {
			_, results[i] = exchangeOver(ctx, network, newQuery(zone, dns.TypeSOA, false), addr)
			if results[i] == nil {
				cancel() // the other one need not finish
			}
		})
	}
	wg.Wait()
	if results[0] == nil || results[1] == nil {
		return nil
	}
	return fmt.Errorf("no answer within %s over UDP (%w) or TCP (%w)", queryTimeout, results[0], results[1])
}
