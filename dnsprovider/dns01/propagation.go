package dns01

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
)

// Propagation says which DNS servers must serve a challenge record before
// a Solver lets the CA validate it.
type Propagation string

// Propagation policies.
const (
	// PropagationAll waits until every authoritative nameserver of the zone
	// serves the record (the default): the CA may ask any of them.
	PropagationAll Propagation = "all"
	// PropagationAny waits until one authoritative nameserver serves it.
	PropagationAny Propagation = "any"
	// PropagationResolvers waits until every configured resolver returns
	// it, for networks where the nameservers cannot be reached directly.
	// Resolvers cache negative answers, so this can take longer.
	PropagationResolvers Propagation = "resolvers"
	// PropagationSkip does not check: only the delay is waited.
	PropagationSkip Propagation = "skip"
)

// ParsePropagation reads a policy name ("all", "any", "resolvers",
// "skip"), ignoring case; the empty string is PropagationAll.
func ParsePropagation(s string) (Propagation, error) {
	p := Propagation(strings.ToLower(strings.TrimSpace(s)))
	switch p {
	case "":
		return PropagationAll, nil
	case PropagationAll, PropagationAny, PropagationResolvers, PropagationSkip:
		return p, nil
	}
	return "", fmt.Errorf("unknown propagation check %q: use all, any, resolvers or skip", s)
}

// pollSchedule spaces the propagation checks of one record: fast at first,
// because most providers publish within a second, backing off for those
// that take minutes.
var pollSchedule = backoff.Policy{Base: 20 * time.Millisecond, Max: 2 * time.Second}

// server is one DNS server that a propagation check asks.
type server struct {
	name  string   // for messages: a nameserver host or a resolver address
	addrs []string // tried in order until one answers
}

// waitPropagated polls until the TXT record name holds value on the servers
// the policy asks, or until timeout.
func (s *Solver) waitPropagated(ctx context.Context, p *presented) error {
	if d := s.cfg.PropagationDelay; d > 0 {
		if err := backoff.Sleep(ctx, d); err != nil {
			return err
		}
	}
	var servers []server
	authoritative := true
	switch s.cfg.Propagation {
	case PropagationSkip:
		return nil
	case PropagationResolvers:
		authoritative = false
		for _, r := range s.lookup.resolvers {
			servers = append(servers, server{name: "resolver " + r, addrs: []string{r}})
		}
	default:
		for _, ns := range p.zone.nameservers {
			servers = append(servers, server{name: "nameserver " + strings.TrimSuffix(ns.host, "."), addrs: ns.addrs})
		}
	}
	need := len(servers)
	if s.cfg.Propagation == PropagationAny {
		need = 1
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.PropagationTimeout,
		fmt.Errorf("gave up after %s (the propagation timeout)", s.cfg.PropagationTimeout))
	defer cancel()

	start := time.Now()
	done := make([]bool, len(servers))
	last := make([]error, len(servers)) // why each server is not done yet
	for poll := 1; ; poll++ {
		var wg sync.WaitGroup
		for i, srv := range servers {
			if done[i] {
				continue
			}
			wg.Go(func() {
				ok, err := serves(ctx, srv, p.entry.Name, p.entry.Value, authoritative)
				if !ok && ctx.Err() != nil && last[i] != nil {
					return // cut short by the timeout: the last answer says more
				}
				done[i], last[i] = ok, err
			})
		}
		wg.Wait()
		ok := 0
		for _, d := range done {
			if d {
				ok++
			}
		}
		if ok >= need {
			s.log.DebugContext(ctx, "challenge record propagated", "name", p.entry.Name, "zone", p.entry.Zone,
				"policy", string(s.cfg.Propagation), "servers", ok, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if backoff.Sleep(ctx, pollSchedule.Delay(poll)) != nil {
			var missing []string
			for i, srv := range servers {
				if !done[i] {
					missing = append(missing, fmt.Sprintf("%s: %v", srv.name, last[i]))
				}
			}
			return fmt.Errorf("dns01: the TXT record %s in zone %s is not served yet (propagation check %q): %s; %w",
				strings.TrimSuffix(p.entry.Name, "."), strings.TrimSuffix(p.entry.Zone, "."), s.cfg.Propagation, strings.Join(missing, "; "), context.Cause(ctx))
		}
	}
}

// errNotYet says that a server answered without the value.
var errNotYet = errors.New("does not serve the value yet")

// serves asks srv for the TXT records at name; it reports whether value is
// among them, or else why not.
func serves(ctx context.Context, srv server, name, value string, authoritative bool) (bool, error) {
	var errs []error
	for _, addr := range srv.addrs {
		values, err := txtAt(ctx, addr, name, authoritative)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue // another address of the same server may answer
		}
		if slices.Contains(values, value) {
			return true, nil
		}
		return false, errNotYet
	}
	return false, errors.Join(errs...)
}
