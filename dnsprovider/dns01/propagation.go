package dns01

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
)

// Propagation says which DNS servers must serve a challenge record before
// a Solver lets the CA validate it.
type Propagation string

// Propagation policies.
const (
	// PropagationAuto (the default) is PropagationAll where the
	// authoritative nameservers can be reached. Those that cannot be reached
	// within a few seconds (port 53 blocked by a firewall) are left out, the
	// Solver logs once which they are, and the record must then be served by
	// every configured resolver too; when none can be reached, only the
	// resolvers are asked, as under PropagationResolvers.
	PropagationAuto Propagation = "auto"
	// PropagationAll waits until every authoritative nameserver of the zone
	// serves the record: the CA may ask any of them. When some cannot be
	// reached, the check fails at once, naming them (see PropagationError).
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

// ParsePropagation reads a policy name ("auto", "all", "any", "resolvers",
// "skip"), ignoring case; the empty string is PropagationAuto.
func ParsePropagation(s string) (Propagation, error) {
	p := Propagation(strings.ToLower(strings.TrimSpace(s)))
	switch p {
	case "":
		return PropagationAuto, nil
	case PropagationAuto, PropagationAll, PropagationAny, PropagationResolvers, PropagationSkip:
		return p, nil
	}
	return "", fmt.Errorf("unknown propagation check %q: use auto, all, any, resolvers or skip", s)
}

// asksNameservers reports whether the policy queries the zone's
// authoritative nameservers.
func (p Propagation) asksNameservers() bool {
	return p == PropagationAuto || p == PropagationAll || p == PropagationAny
}

// pollSchedule spaces the propagation checks of one record: fast at first,
// because most providers publish within a second, backing off for those
// that take minutes.
var pollSchedule = backoff.Policy{Base: 20 * time.Millisecond, Max: 2 * time.Second}

// server is one DNS server that a propagation check asks.
type server struct {
	host          string   // a nameserver host without trailing dot, or a resolver address
	addrs         []string // tried in order until one answers
	authoritative bool     // a nameserver of the zone, asked without recursion
}

func (srv server) role() string {
	if srv.authoritative {
		return "nameserver"
	}
	return "resolver"
}

// ErrNameserversUnreachable is returned (wrapped in a *PropagationError)
// when the policy needs authoritative nameservers that cannot be reached.
var ErrNameserversUnreachable = errors.New("the authoritative nameservers cannot be reached: is DNS (port 53) to the internet blocked? PropagationCheck=resolvers (dns01.Config.Propagation, CERTFLEET_PROPAGATION_CHECK) checks through the resolvers instead")

// ServerStatus is what a propagation check last learned from one server.
type ServerStatus struct {
	Role        string // "nameserver" (authoritative, of the zone) or "resolver"
	Server      string // the nameserver's host name, or the resolver's address
	Address     string // the address last queried ("ip:port")
	Answer      string // the last answer: `TXT "v1" "v2"`, "no TXT records" or "NXDOMAIN"; empty when none came
	Err         error  // why the last query failed, or errNotYet; nil once Served
	Served      bool   // whether the server serves the value
	Unreachable bool   // whether the server could not be reached at all
}

// PropagationError is returned by Wait when a challenge record is not served
// as the policy requires: the propagation timeout passed, or the
// nameservers cannot be reached (Err is then ErrNameserversUnreachable). It
// holds one row per server asked. Match it with errors.As.
type PropagationError struct {
	Name    string         // the TXT record's FQDN, without trailing dot
	Zone    string         // its zone, without trailing dot
	Policy  Propagation    // the policy in force
	Servers []ServerStatus // every server asked, in order
	Err     error          // why the check ended
}

// Error names the record and, for each server that does not serve it, the
// address queried, the last answer and the last error.
func (e *PropagationError) Error() string {
	var b strings.Builder
	if errors.Is(e.Err, ErrNameserversUnreachable) {
		fmt.Fprintf(&b, "dns01: cannot check that the TXT record %s in zone %s is served (propagation check %q): ", e.Name, e.Zone, e.Policy)
	} else {
		fmt.Fprintf(&b, "dns01: the TXT record %s in zone %s is not served yet (propagation check %q): ", e.Name, e.Zone, e.Policy)
	}
	var rows []string
	for _, s := range e.Servers {
		if s.Served {
			continue
		}
		row := s.Role + " " + s.Server
		if s.Address != "" {
			row += " (" + s.Address + ")"
		}
		if s.Answer != "" {
			row += " answered " + s.Answer
		}
		if s.Err != nil {
			row += ": " + s.Err.Error()
		}
		rows = append(rows, row)
	}
	b.WriteString(strings.Join(rows, "; "))
	if e.Err != nil {
		b.WriteString("; " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns why the check ended.
func (e *PropagationError) Unwrap() error { return e.Err }

// Table returns the servers as an aligned text table, one per line, with
// the columns ROLE, SERVER, ADDRESS, SERVED, ANSWER and ERROR.
func (e *PropagationError) Table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tSERVER\tADDRESS\tSERVED\tANSWER\tERROR")
	for _, s := range e.Servers {
		served, errText := "no", "-"
		if s.Served {
			served = "yes"
		}
		if s.Err != nil {
			errText = s.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Role, s.Server, cmp.Or(s.Address, "-"), served, cmp.Or(s.Answer, "-"), errText)
	}
	_ = tw.Flush()
	return b.String()
}

// propagationServers returns the servers the policy asks about p. Under
// every policy that asks the authoritative nameservers it first makes sure
// they can be reached, and falls back or fails fast as the policy says.
func (s *Solver) propagationServers(ctx context.Context, p *presented) ([]server, int, error) {
	policy := s.cfg.Propagation
	var resolvers []server
	for _, r := range s.lookup.resolvers {
		resolvers = append(resolvers, server{host: r, addrs: []string{r}})
	}
	if policy == PropagationResolvers {
		return resolvers, len(resolvers), nil
	}
	var reachable []server
	var rows []ServerStatus
	unreachable := s.lookup.unreachable(ctx, p.zone.name, p.zone.nameservers)
	for i, ns := range p.zone.nameservers {
		srv := server{host: strings.TrimSuffix(ns.host, "."), addrs: ns.addrs, authoritative: true}
		if err := unreachable[i]; err != nil {
			rows = append(rows, ServerStatus{Role: srv.role(), Server: srv.host, Address: strings.Join(ns.addrs, ", "), Err: err, Unreachable: true})
			continue
		}
		reachable = append(reachable, srv)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if len(rows) > 0 {
		s.warnUnreachable(ctx, p.zone.name, rows, policy)
	}
	switch {
	case len(rows) == 0 && policy == PropagationAny:
		return reachable, 1, nil
	case len(rows) == 0:
		return reachable, len(reachable), nil
	case policy == PropagationAny && len(reachable) > 0:
		return reachable, 1, nil
	case policy == PropagationAuto:
		servers := append(reachable, resolvers...)
		return servers, len(servers), nil
	}
	return nil, 0, &PropagationError{
		Name: strings.TrimSuffix(p.entry.Name, "."), Zone: strings.TrimSuffix(p.entry.Zone, "."), Policy: policy,
		Servers: rows, Err: ErrNameserversUnreachable,
	}
}

// warnUnreachable logs, once per zone and set of nameservers, that some
// nameservers cannot be reached and what the Solver does about it.
func (s *Solver) warnUnreachable(ctx context.Context, zone string, rows []ServerStatus, policy Propagation) {
	var names []string
	for _, r := range rows {
		names = append(names, r.Server+" ("+r.Address+")")
	}
	key := zone + "\x00" + strings.Join(names, ",")
	if _, seen := s.warned.LoadOrStore(key, true); seen {
		return
	}
	action := "the propagation check fails"
	switch policy {
	case PropagationAuto:
		action = "checking through the resolvers (and the nameservers that answer) instead"
	case PropagationAny:
		action = "checking the nameservers that answer"
	}
	s.log.WarnContext(ctx, "cannot reach authoritative nameservers to check DNS-01 records; set PropagationCheck=resolvers if DNS (port 53) to the internet is blocked here",
		"zone", strings.TrimSuffix(zone, "."), "unreachable", strings.Join(names, ", "), "port", s.lookup.nsPort,
		"policy", string(policy), "action", action, "error", rows[0].Err)
}

// waitPropagated polls until the TXT record name holds value on the servers
// the policy asks, or until timeout.
func (s *Solver) waitPropagated(ctx context.Context, p *presented) error {
	if d := s.cfg.PropagationDelay; d > 0 {
		if err := backoff.Sleep(ctx, d); err != nil {
			return err
		}
	}
	if s.cfg.Propagation == PropagationSkip {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.PropagationTimeout,
		fmt.Errorf("gave up after %s (the propagation timeout)", s.cfg.PropagationTimeout))
	defer cancel()
	servers, need, err := s.propagationServers(ctx, p)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return err
	}

	start := time.Now()
	status := make([]ServerStatus, len(servers))
	for i, srv := range servers {
		status[i] = ServerStatus{Role: srv.role(), Server: srv.host}
	}
	for poll := 1; ; poll++ {
		var wg sync.WaitGroup
		for i, srv := range servers {
			if status[i].Served {
				continue
			}
			wg.Go(func() {
				st := serves(ctx, srv, p.entry.Name, p.entry.Value)
				if !st.Served && ctx.Err() != nil && status[i].Err != nil {
					return // cut short by the timeout: the last answer says more
				}
				status[i] = st
			})
		}
		wg.Wait()
		ok := 0
		for _, st := range status {
			if st.Served {
				ok++
			}
		}
		if ok >= need {
			s.log.DebugContext(ctx, "challenge record propagated", "name", p.entry.Name, "zone", p.entry.Zone,
				"policy", string(s.cfg.Propagation), "servers", ok, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if backoff.Sleep(ctx, pollSchedule.Delay(poll)) != nil {
			return &PropagationError{
				Name: strings.TrimSuffix(p.entry.Name, "."), Zone: strings.TrimSuffix(p.entry.Zone, "."),
				Policy: s.cfg.Propagation, Servers: status, Err: context.Cause(ctx),
			}
		}
	}
}

// errNotYet says that a server answered without the value.
var errNotYet = errors.New("does not serve the value yet")

// serves asks srv for the TXT records at name and reports whether value is
// among them: the status of srv after the query.
func serves(ctx context.Context, srv server, name, value string) ServerStatus {
	st := ServerStatus{Role: srv.role(), Server: srv.host}
	var errs []error
	for _, addr := range srv.addrs {
		st.Address = addr
		values, answer, err := txtAt(ctx, addr, name, srv.authoritative)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue // another address of the same server may answer
		}
		st.Answer = answer
		if slices.Contains(values, value) {
			st.Served = true
			return st
		}
		st.Err = errNotYet
		return st
	}
	st.Err = errors.Join(errs...)
	return st
}
