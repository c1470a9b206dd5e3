package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/internal/backoff"
	"github.com/certfleet/certfleet/tlsauto"
)

// Step results.
const (
	statusOK   = "ok"
	statusWarn = "warn" // works, but deserves a look
	statusFail = "fail"
	statusSkip = "skip"
)

// step is one timed check of doctor.
type step struct {
	Name    string        `json:"name"`
	Status  string        `json:"status"`
	Millis  int64         `json:"ms"`
	Detail  string        `json:"detail"`
	Servers []serverCheck `json:"servers,omitempty"`
}

// serverCheck is one DNS server's answer to the probe record.
type serverCheck struct {
	Server  string `json:"server"`  // nameserver host or resolver
	Address string `json:"address"` // the address that answered last
	Result  string `json:"result"`  // seen, not seen, unreachable, gone, still served
	AfterMS int64  `json:"after_ms,omitempty"`
	Error   string `json:"error,omitempty"`
}

// doctorReport is doctor's JSON output.
type doctorReport struct {
	OK    bool   `json:"ok"`
	Steps []step `json:"steps"`
}

// doctor is one run of certfleet doctor.
type doctor struct {
	c       *cli
	noWrite bool
	report  doctorReport

	cfg       tlsauto.Config
	cas       []checkedCA // what the CA checks learned, in the order of use
	inspector *dns01.Inspector
}

func doctorFlags(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
	noWrite := fs.Bool("no-write", false, "do not write the probe TXT record through the DNS provider")
	return func(ctx context.Context, c *cli, names []string) int {
		d := &doctor{c: c, noWrite: *noWrite}
		return d.run(ctx, names)
	}
}

// timed runs fn as the step called name, and records and prints its
// result. fn returns the status and a detail.
func (d *doctor) timed(name string, fn func(s *step)) *step {
	s := &step{Name: name}
	start := time.Now()
	fn(s)
	s.Millis = time.Since(start).Milliseconds()
	d.report.Steps = append(d.report.Steps, *s)
	if !d.c.json {
		printStep(d.c, s)
	}
	return s
}

func printStep(c *cli, s *step) {
	fmt.Fprintf(c.stdout, "%-5s %-44s %6d ms  %s\n", s.Status, s.Name, s.Millis, s.Detail)
	if len(s.Servers) > 0 {
		fmt.Fprintf(c.stdout, "      %-28s %-22s %s\n", "SERVER", "ADDRESS", "RESULT")
		for _, r := range s.Servers {
			res := r.Result
			if r.AfterMS > 0 || r.Result == "seen" || r.Result == "gone" {
				res = fmt.Sprintf("%s after %d ms", r.Result, r.AfterMS)
			}
			if r.Error != "" {
				res += " (" + r.Error + ")"
			}
			fmt.Fprintf(c.stdout, "      %-28s %-22s %s\n", r.Server, r.Address, res)
		}
	}
}

// storageTimeout bounds opening the storage and each storage check, unless
// CERTFLEET_START_TIMEOUT says otherwise.
const storageTimeout = 15 * time.Second

func startTimeout() (time.Duration, error) {
	v := strings.TrimSpace(os.Getenv(tlsauto.EnvStartTimeout))
	if v == "" {
		return storageTimeout, nil
	}
	t, err := time.ParseDuration(v)
	if err != nil || t <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration such as 5m", tlsauto.EnvStartTimeout, v)
	}
	return t, nil
}

func (d *doctor) run(ctx context.Context, names []string) int {
	timeout, err := startTimeout()
	if err != nil {
		return d.c.usageError(err)
	}
	var closer interface{ Close() error }
	var cfgErr, storageErr error
	d.timed("configuration", func(s *step) {
		octx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var err error
		d.cfg, closer, err = tlsauto.ConfigFromEnv(octx, names...)
		var se *tlsauto.StorageError
		switch {
		case errors.As(err, &se):
			storageErr = se
			s.Status, s.Detail = statusOK, d.describeConfig()
		case err != nil:
			cfgErr = err
			s.Status, s.Detail = statusFail, err.Error()
		default:
			s.Status, s.Detail = statusOK, d.describeConfig()
		}
	})
	if storageErr != nil {
		d.timed("storage reachable", func(s *step) {
			s.Status, s.Detail = statusFail, fmt.Sprintf("%v: check that the storage runs and is reachable from here, and its credentials", storageErr)
		})
	}
	if cfgErr != nil {
		if d.c.json {
			d.c.printJSON(d.report)
		}
		return d.c.usageError(cfgErr)
	}
	if closer != nil {
		defer closer.Close()
		d.checkStorage(ctx, timeout)
	}
	d.checkCAs(ctx)
	if d.inspector, err = dns01.NewInspector(d.cfg.Resolvers, d.cfg.DNSPort); err != nil {
		d.timed("DNS resolvers", func(s *step) { s.Status, s.Detail = statusFail, err.Error() })
	} else {
		for _, name := range d.cfg.Domains {
			d.checkName(ctx, name)
		}
	}
	if len(d.cfg.Domains) == 0 && !d.c.json {
		fmt.Fprintf(d.c.stdout, "(no names given, nor %s: the DNS checks were skipped)\n", tlsauto.EnvDomains)
	}
	d.report.OK = true
	for _, s := range d.report.Steps {
		if s.Status == statusFail {
			d.report.OK = false
		}
	}
	if d.c.json {
		d.c.printJSON(d.report)
	} else if d.report.OK {
		fmt.Fprintln(d.c.stdout, "all checks passed")
	} else {
		fmt.Fprintln(d.c.stdout, "some checks failed: see the lines marked fail")
	}
	if !d.report.OK {
		return exitFail
	}
	return exitOK
}

func (d *doctor) describeConfig() string {
	var urls []string
	for _, ca := range d.configuredCAs() {
		urls = append(urls, ca.URL)
	}
	ca := strings.Join(urls, " then ")
	check := string(d.cfg.PropagationCheck)
	if check == "" {
		check = string(dns01.PropagationAuto)
	}
	return fmt.Sprintf("CA %s, DNS provider %s, propagation check %s, %d name(s)", ca, os.Getenv(tlsauto.EnvDNSProvider), check, len(d.cfg.Domains))
}

// checkStorage writes, reads, lists and deletes a probe key, and takes and
// releases a lock.
func (d *doctor) checkStorage(ctx context.Context, timeout time.Duration) {
	st := d.cfg.Storage
	key := "certfleet-doctor/probe-" + rand.Text()[:10]
	d.timed("storage reachable", func(s *step) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		want := []byte("certfleet doctor " + time.Now().UTC().Format(time.RFC3339))
		err := st.Store(ctx, key, want)
		if err == nil {
			var got []byte
			got, err = st.Load(ctx, key)
			if err == nil && string(got) != string(want) {
				err = errors.New("a value read back differs from the one written")
			}
		}
		if err == nil {
			_, err = st.List(ctx, "certfleet-doctor", false)
		}
		if derr := st.Delete(context.WithoutCancel(ctx), key); err == nil {
			err = derr
		}
		if err != nil {
			s.Status, s.Detail = statusFail, fmt.Sprintf("%v: %v (check that it runs, is reachable from here, and the credentials)", st, err)
			return
		}
		s.Status, s.Detail = statusOK, fmt.Sprintf("%v: a key written, read, listed and deleted", st)
	})
	d.timed("storage lock", func(s *step) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		name := "certfleet_doctor_" + rand.Text()[:10]
		if err := st.Lock(ctx, name); err != nil {
			s.Status, s.Detail = statusFail, fmt.Sprintf("taking a lock: %v", err)
			return
		}
		if err := st.Unlock(context.WithoutCancel(ctx), name); err != nil {
			s.Status, s.Detail = statusFail, fmt.Sprintf("releasing a lock: %v", err)
			return
		}
		s.Status, s.Detail = statusOK, "a lock taken and released"
	})
}

// directory is what doctor reads of an ACME directory.
type directory struct {
	NewNonce   string `json:"newNonce"`
	NewAccount string `json:"newAccount"`
	NewOrder   string `json:"newOrder"`
	Meta       struct {
		TermsOfService          string          `json:"termsOfService"`
		CAAIdentities           []string        `json:"caaIdentities"`
		ExternalAccountRequired bool            `json:"externalAccountRequired"`
		Profiles                json.RawMessage `json:"profiles"`
	} `json:"meta"`
}

// configuredCAs returns the CAs of the configuration in their order of
// use: Config.CAs, or the single CA of Config.CA, CARoots, EAB and Profile.
func (d *doctor) configuredCAs() []tlsauto.CA {
	cas := d.cfg.CAs
	if len(cas) == 0 {
		cas = []tlsauto.CA{{URL: d.cfg.CA, Roots: d.cfg.CARoots, EAB: d.cfg.EAB, Profile: d.cfg.Profile}}
	}
	out := make([]tlsauto.CA, len(cas))
	for i, ca := range cas {
		out[i] = ca
		out[i].URL = cmp.Or(ca.URL, tlsauto.LetsEncrypt)
	}
	return out
}

// checkedCA is what doctor learned of a CA's directory.
type checkedCA struct {
	url     string
	reached bool
	caaIDs  []string // the domains CAA records name it by
}

// checkCAs checks every configured CA, and the clock against the first one
// reached. With one CA the steps are "CA directory", "CA profiles" and
// "external account binding"; with several, each is numbered ("CA 2
// directory").
func (d *doctor) checkCAs(ctx context.Context) {
	cas := d.configuredCAs()
	clocked := false
	for i, ca := range cas {
		label := "CA"
		if len(cas) > 1 {
			label = fmt.Sprintf("CA %d", i+1)
		}
		checked, date, rtt := d.checkCA(ctx, label, ca)
		d.cas = append(d.cas, checked)
		if checked.reached && !clocked {
			clocked = true
			d.checkClock(date, rtt)
		}
	}
}

// checkCA fetches one CA's ACME directory and checks the profile and
// external account binding asked of it. It returns what it learned, and the
// CA's Date header with the round trip it came in.
func (d *doctor) checkCA(ctx context.Context, label string, ca tlsauto.CA) (checkedCA, time.Time, time.Duration) {
	checked := checkedCA{url: ca.URL}
	var dir directory
	var date time.Time
	var rtt time.Duration
	s := d.timed(label+" directory", func(s *step) {
		client := &http.Client{Timeout: 15 * time.Second}
		if ca.Roots != nil {
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots}, Proxy: http.ProxyFromEnvironment}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ca.URL, nil)
		if err != nil {
			s.Status, s.Detail = statusFail, err.Error()
			return
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			s.Status, s.Detail = statusFail, fmt.Sprintf("%s is not reachable: %v", ca.URL, err)
			return
		}
		defer resp.Body.Close()
		rtt = time.Since(start)
		date, _ = http.ParseTime(resp.Header.Get("Date"))
		if resp.StatusCode != http.StatusOK {
			s.Status, s.Detail = statusFail, fmt.Sprintf("%s answered %s: is it an ACME directory URL?", ca.URL, resp.Status)
			return
		}
		if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&dir); err != nil || dir.NewOrder == "" {
			s.Status, s.Detail = statusFail, fmt.Sprintf("%s is not an ACME directory (no newOrder)", ca.URL)
			return
		}
		s.Status = statusOK
		s.Detail = ca.URL
		if t := dir.Meta.TermsOfService; t != "" {
			s.Detail += "; terms of service " + t
		}
	})
	if s.Status != statusOK {
		return checked, date, rtt
	}
	checked.reached, checked.caaIDs = true, dir.Meta.CAAIdentities
	d.timed(label+" profiles", func(s *step) {
		var profiles map[string]any
		_ = json.Unmarshal(dir.Meta.Profiles, &profiles)
		var offered []string
		for p := range profiles {
			offered = append(offered, p)
		}
		slices.Sort(offered)
		want := ca.Profile
		switch {
		case want == "" && len(offered) == 0:
			s.Status, s.Detail = statusOK, "the CA offers no profiles; none is asked for"
		case want == "":
			s.Status, s.Detail = statusOK, fmt.Sprintf("offered: %s; none asked for (%s): the CA's default", strings.Join(offered, ", "), tlsauto.EnvProfile)
		case slices.Contains(offered, want):
			s.Status, s.Detail = statusOK, fmt.Sprintf("%s=%s is offered (offered: %s)", tlsauto.EnvProfile, want, strings.Join(offered, ", "))
		default:
			s.Status, s.Detail = statusFail, fmt.Sprintf("%s=%s is not offered by the CA (offered: %s): change %s", tlsauto.EnvProfile, want, strings.Join(offered, ", "), tlsauto.EnvProfile)
		}
	})
	name := "external account binding"
	if label != "CA" {
		name = label + " " + name
	}
	d.timed(name, func(s *step) {
		switch {
		case dir.Meta.ExternalAccountRequired && ca.EAB == nil:
			s.Status, s.Detail = statusFail, fmt.Sprintf("the CA requires it: set %s and %s to the values the CA gave you", tlsauto.EnvEABKeyID, tlsauto.EnvEABMACKey)
		case dir.Meta.ExternalAccountRequired:
			s.Status, s.Detail = statusOK, "required by the CA, and set (the CA checks it at the first order)"
		case ca.EAB != nil:
			s.Status, s.Detail = statusOK, "not required by the CA; the one set is sent anyway"
		default:
			s.Status, s.Detail = statusOK, "not required"
		}
	})
	return checked, date, rtt
}

// checkClock compares this machine's clock with a CA's Date header, which
// was stamped somewhere within the round trip rtt.
func (d *doctor) checkClock(date time.Time, rtt time.Duration) {
	d.timed("clock", func(s *step) {
		if date.IsZero() {
			s.Status, s.Detail = statusWarn, "the CA sent no Date header: clock not compared"
			return
		}
		// The Date header has a resolution of a second.
		skew := time.Until(date.Add(rtt / 2))
		switch abs := max(skew, -skew); {
		case abs > 5*time.Minute:
			s.Status = statusFail
		case abs > 30*time.Second:
			s.Status = statusWarn
		default:
			s.Status = statusOK
		}
		s.Detail = fmt.Sprintf("this machine's clock is %v %s the CA's", max(skew, -skew).Round(time.Second), map[bool]string{true: "behind", false: "ahead of"}[skew > 0])
		if s.Status != statusOK {
			s.Detail += ": synchronize it (NTP); certificates and renewal times depend on it"
		}
	})
}

// checkName checks DNS-01 for one name end to end.
func (d *doctor) checkName(ctx context.Context, name string) {
	base := strings.TrimPrefix(name, "*.")
	chal := "_acme-challenge." + base
	var target, zone string
	s := d.timed(name+": challenge name", func(s *step) {
		var err error
		target, err = d.inspector.FollowCNAME(ctx, chal)
		switch {
		case err != nil:
			s.Status, s.Detail = statusFail, err.Error()
		case target != dns.Fqdn(chal):
			s.Status, s.Detail = statusOK, fmt.Sprintf("%s is delegated by CNAME to %s: the record is written there", chal, target)
		default:
			s.Status, s.Detail = statusOK, fmt.Sprintf("%s (no CNAME delegation)", chal)
		}
	})
	if s.Status != statusOK {
		return
	}
	var nss []dns01.Nameserver
	s = d.timed(name+": zone", func(s *step) {
		var err error
		if zone, err = d.inspector.FindZone(ctx, target); err != nil {
			s.Status, s.Detail = statusFail, err.Error()
			return
		}
		if nss, err = d.inspector.Nameservers(ctx, zone); err != nil {
			s.Status, s.Detail = statusFail, err.Error()
			return
		}
		var hosts []string
		for _, ns := range nss {
			hosts = append(hosts, strings.TrimSuffix(ns.Host, "."))
		}
		s.Status, s.Detail = statusOK, fmt.Sprintf("zone %s, nameservers %s", strings.TrimSuffix(zone, "."), strings.Join(hosts, ", "))
	})
	if s.Status != statusOK {
		return
	}
	d.checkSplitHorizon(ctx, name, zone, nss)
	servers, authoritative, ok := d.reachableServers(ctx, zone, nss)
	if ok {
		if d.noWrite {
			d.timed(name+": probe record", func(s *step) {
				s.Status, s.Detail = statusSkip, "--no-write: no record written through the provider"
			})
		} else {
			d.probe(ctx, name, zone, target, servers, authoritative)
		}
	}
	d.checkCAA(ctx, name)
	d.checkDNSSEC(ctx, name, zone)
}

// zoneView is what one server says of a zone's apex: its SOA (serial and
// primary nameserver) and NS set, or why it has none.
type zoneView struct {
	server  string
	serial  uint32
	mname   string
	ns      []string // sorted, lower case
	problem string   // non-empty: no such zone here
}

func (v zoneView) same(o zoneView) bool {
	return v.problem == "" && o.problem == "" && v.serial == o.serial && v.mname == o.mname && slices.Equal(v.ns, o.ns)
}

func (v zoneView) String() string {
	if v.problem != "" {
		return v.server + ": " + v.problem
	}
	return fmt.Sprintf("%s: SOA serial %d, primary %s, NS %s", v.server, v.serial, strings.TrimSuffix(v.mname, "."), strings.Join(v.ns, " "))
}

// askZone asks server for the SOA and NS records at zone's apex, as a
// resolver (recursive) or as one of its authoritative nameservers.
func askZone(ctx context.Context, server, zone string, recursive bool) (zoneView, error) {
	v := zoneView{server: server}
	for _, qtype := range []uint16{dns.TypeSOA, dns.TypeNS} {
		q := new(dns.Msg)
		q.SetQuestion(zone, qtype)
		q.RecursionDesired = recursive
		r, err := dns01.Exchange(ctx, q, server)
		if err != nil {
			return v, err
		}
		if !recursive && !r.Authoritative {
			v.problem = fmt.Sprintf("not authoritative for %s (answered %s without authority)", strings.TrimSuffix(zone, "."), dns.RcodeToString[r.Rcode])
			return v, nil
		}
		if r.Rcode != dns.RcodeSuccess {
			v.problem = fmt.Sprintf("no zone %s (%s)", strings.TrimSuffix(zone, "."), dns.RcodeToString[r.Rcode])
			return v, nil
		}
		for _, rr := range r.Answer {
			if !strings.EqualFold(rr.Header().Name, zone) {
				continue
			}
			switch rr := rr.(type) {
			case *dns.SOA:
				v.serial, v.mname = rr.Serial, strings.ToLower(dns.Fqdn(rr.Ns))
			case *dns.NS:
				v.ns = append(v.ns, strings.ToLower(strings.TrimSuffix(rr.Ns, ".")))
			}
		}
		if qtype == dns.TypeSOA && v.mname == "" {
			v.problem = fmt.Sprintf("no SOA at %s: a different zone cut", strings.TrimSuffix(zone, "."))
			return v, nil
		}
	}
	slices.Sort(v.ns)
	return v, nil
}

// checkSplitHorizon compares the zone as the resolvers serve it with the
// zone as its authoritative nameservers serve it. They differ under
// split-horizon DNS, where the resolvers here answer from an internal copy
// of the zone: the CA looks the challenge record up in the public one.
func (d *doctor) checkSplitHorizon(ctx context.Context, name, zone string, nss []dns01.Nameserver) {
	zname := strings.TrimSuffix(zone, ".")
	policy, _ := dns01.ParsePropagation(string(d.cfg.PropagationCheck))
	d.timed(name+": resolvers see the public zone", func(s *step) {
		var public []zoneView
		for _, ns := range nss {
			for _, addr := range ns.Addrs {
				v, err := askZone(ctx, addr, zone, false)
				if err != nil {
					continue
				}
				v.server = strings.TrimSuffix(ns.Host, ".")
				public = append(public, v)
				break
			}
		}
		public = slices.DeleteFunc(public, func(v zoneView) bool { return v.problem != "" })
		if len(public) == 0 {
			s.Status, s.Detail = statusSkip, fmt.Sprintf("no authoritative nameserver of %s answers for it: the resolvers' view is not compared", zname)
			return
		}
		var differ []string
		for _, r := range d.inspector.Resolvers() {
			v, err := askZone(ctx, r, zone, true)
			if err != nil {
				continue // an unreachable resolver is reported by the other steps
			}
			v.server = "resolver " + r
			if !slices.ContainsFunc(public, v.same) {
				differ = append(differ, v.String())
			}
		}
		if len(differ) == 0 {
			s.Status, s.Detail = statusOK, fmt.Sprintf("the resolvers and the authoritative nameservers serve the same %s (SOA serial %d)", zname, public[0].serial)
			return
		}
		s.Detail = fmt.Sprintf("split-horizon DNS: your resolvers serve a different %s than its public nameservers; the CA sees the public one (%s; public: %s)",
			zname, strings.Join(differ, "; "), public[0])
		fix := fmt.Sprintf("point %s at resolvers that see the public zone, or set %s=all so the authoritative nameservers are asked directly", tlsauto.EnvResolvers, tlsauto.EnvPropagationCheck)
		if policy == dns01.PropagationAll || policy == dns01.PropagationAny {
			fix = fmt.Sprintf("point %s at resolvers that see the public zone", tlsauto.EnvResolvers)
		}
		fix += " (a resolver's cached SOA may also lag for its TTL: run doctor again to tell)"
		switch policy {
		case dns01.PropagationResolvers:
			s.Status, s.Detail = statusFail, s.Detail+fmt.Sprintf(": %s=resolvers waits for the record in the wrong copy; ", tlsauto.EnvPropagationCheck)+fix
		case dns01.PropagationAuto:
			s.Status, s.Detail = statusWarn, s.Detail+fmt.Sprintf(": %s=auto asks the nameservers found through the resolvers, and the resolvers themselves when none answers: ", tlsauto.EnvPropagationCheck)+fix
		case dns01.PropagationSkip:
			s.Status, s.Detail = statusWarn, s.Detail+fmt.Sprintf(": %s=skip checks no propagation, and the zone and nameservers were found through the resolvers: ", tlsauto.EnvPropagationCheck)+fix
		default:
			s.Status, s.Detail = statusWarn, s.Detail+fmt.Sprintf(": %s=%s asks the nameservers, not the resolvers, so propagation is checked where the CA looks; the zone and nameservers were still found through the resolvers: ", tlsauto.EnvPropagationCheck, policy)+fix
		}
	})
}

// probeServer is a server the probe record is looked for on.
type probeServer struct {
	name  string
	addrs []string
}

// reachableServers returns the servers the propagation check asks, after
// checking, within seconds, that they can be reached at all.
func (d *doctor) reachableServers(ctx context.Context, zone string, nss []dns01.Nameserver) ([]probeServer, bool, bool) {
	policy, _ := dns01.ParsePropagation(string(d.cfg.PropagationCheck))
	var servers []probeServer
	authoritative := true
	switch policy {
	case dns01.PropagationSkip:
		d.timed(zone+" servers", func(s *step) {
			s.Status, s.Detail = statusSkip, fmt.Sprintf("%s=skip: propagation is not checked", tlsauto.EnvPropagationCheck)
		})
		return nil, false, true
	case dns01.PropagationResolvers:
		authoritative = false
		for _, r := range d.inspector.Resolvers() {
			servers = append(servers, probeServer{name: "resolver", addrs: []string{r}})
		}
	default:
		for _, ns := range nss {
			servers = append(servers, probeServer{name: strings.TrimSuffix(ns.Host, "."), addrs: ns.Addrs})
		}
	}
	reachable := make([]bool, len(servers))
	errs := make([]error, len(servers))
	s := d.timed(strings.TrimSuffix(zone, ".")+": servers reachable", func(s *step) {
		var wg sync.WaitGroup
		for i, srv := range servers {
			wg.Go(func() {
				for _, addr := range srv.addrs {
					q := new(dns.Msg)
					q.SetQuestion(zone, dns.TypeSOA)
					q.RecursionDesired = !authoritative
					if _, err := dns01.Exchange(ctx, q, addr); err != nil {
						errs[i] = fmt.Errorf("%s: %w", addr, err)
						continue
					}
					reachable[i], errs[i] = true, nil
					return
				}
			})
		}
		wg.Wait()
		n := 0
		for i, srv := range servers {
			row := serverCheck{Server: srv.name, Address: strings.Join(srv.addrs, " "), Result: "reachable"}
			if reachable[i] {
				n++
			} else {
				row.Result, row.Error = "unreachable", errs[i].Error()
			}
			s.Servers = append(s.Servers, row)
		}
		switch {
		case n == len(servers):
			s.Status, s.Detail = statusOK, fmt.Sprintf("%d of %d answer", n, len(servers))
		case n > 0:
			s.Status, s.Detail = statusWarn, fmt.Sprintf("only %d of %d answer: the CA may ask one that does not", n, len(servers))
		case authoritative && policy == dns01.PropagationAuto:
			s.Status, s.Detail = statusWarn, fmt.Sprintf("no authoritative nameserver of %s answers on port %s: outgoing DNS (port 53) is probably blocked here; under %s=auto, propagation is checked through the resolvers instead (set %s=resolvers to say so and skip this)",
				strings.TrimSuffix(zone, "."), nsPort(d.cfg.DNSPort), tlsauto.EnvPropagationCheck, tlsauto.EnvPropagationCheck)
		case authoritative:
			s.Status, s.Detail = statusFail, fmt.Sprintf("no authoritative nameserver of %s answers on port %s: outgoing DNS (port 53) is probably blocked here; set %s=resolvers (with %s) to check propagation through your resolvers instead",
				strings.TrimSuffix(zone, "."), nsPort(d.cfg.DNSPort), tlsauto.EnvPropagationCheck, tlsauto.EnvResolvers)
		default:
			s.Status, s.Detail = statusFail, "no resolver answers: check "+tlsauto.EnvResolvers
		}
	})
	if s.Status == statusFail {
		return nil, false, false
	}
	if !slices.Contains(reachable, true) {
		// Under auto, the solver checks through the resolvers when no
		// nameserver can be reached: so does the probe.
		servers = servers[:0]
		for _, r := range d.inspector.Resolvers() {
			servers = append(servers, probeServer{name: "resolver", addrs: []string{r}})
		}
		return servers, false, true
	}
	var out []probeServer
	for i, srv := range servers {
		if reachable[i] {
			out = append(out, srv)
		}
	}
	return out, authoritative, true
}

func nsPort(p int) string {
	if p == 0 {
		return "53"
	}
	return fmt.Sprint(p)
}

// pollSchedule spaces the looks for the probe record: fast at first.
var pollSchedule = backoff.Policy{Base: 20 * time.Millisecond, Max: time.Second}

// probe writes a TXT record through the provider, waits until every server
// serves it, deletes it and waits until none does.
func (d *doctor) probe(ctx context.Context, name, zone, target string, servers []probeServer, authoritative bool) {
	value := "certfleet-doctor-" + rand.Text()
	rec := libdns.TXT{Name: libdns.RelativeName(target, zone), TTL: time.Minute, Text: value}
	timeout := d.cfg.PropagationTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	s := d.timed(name+": probe record written", func(s *step) {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := d.cfg.DNS.AppendRecords(wctx, zone, []libdns.Record{rec}); err != nil {
			s.Status, s.Detail = statusFail, fmt.Sprintf("the DNS provider (%s) could not write a TXT record at %s in zone %s: %v: check its credentials and that they may edit this zone",
				os.Getenv(tlsauto.EnvDNSProvider), strings.TrimSuffix(target, "."), strings.TrimSuffix(zone, "."), err)
			return
		}
		s.Status, s.Detail = statusOK, fmt.Sprintf("TXT %s = %q through %s", strings.TrimSuffix(target, "."), value, os.Getenv(tlsauto.EnvDNSProvider))
	})
	if s.Status != statusOK {
		return
	}
	policy, _ := dns01.ParsePropagation(string(d.cfg.PropagationCheck))
	d.timed(name+": probe record served", func(s *step) {
		rows := d.watch(ctx, servers, target, value, true, authoritative, timeout)
		s.Servers = rows
		seen := 0
		for _, r := range rows {
			if r.Result == "seen" {
				seen++
			}
		}
		switch {
		case seen == len(rows):
			s.Status, s.Detail = statusOK, fmt.Sprintf("served by all %d servers", len(rows))
		case seen > 0 && policy == dns01.PropagationAny:
			s.Status, s.Detail = statusWarn, fmt.Sprintf("served by %d of %d servers within %v (enough for %s=any)", seen, len(rows), timeout, tlsauto.EnvPropagationCheck)
		default:
			s.Status, s.Detail = statusFail, fmt.Sprintf("served by %d of %d servers within %v (%s): a lagging nameserver makes orders fail; raise %s if it catches up later",
				seen, len(rows), timeout, tlsauto.EnvPropagationTimeout, tlsauto.EnvPropagationTimeout)
		}
	})
	d.timed(name+": probe record deleted", func(s *step) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := d.cfg.DNS.DeleteRecords(dctx, zone, []libdns.Record{libdns.TXT{Name: rec.Name, Text: value}}); err != nil {
			s.Status, s.Detail = statusFail, fmt.Sprintf("deleting the probe record through the provider: %v: delete TXT %s = %q by hand", err, strings.TrimSuffix(target, "."), value)
			return
		}
		if !authoritative {
			s.Status, s.Detail = statusOK, "deleted (resolvers cache it for its TTL: absence not checked)"
			return
		}
		rows := d.watch(ctx, servers, target, value, false, true, timeout)
		s.Servers = rows
		for _, r := range rows {
			if r.Result != "gone" {
				s.Status, s.Detail = statusWarn, "deleted through the provider, but still served by some servers"
				return
			}
		}
		s.Status, s.Detail = statusOK, "deleted, and served by no server any more"
	})
}

// watch polls servers until each serves value at name (present) or no
// longer does (!present), or timeout passes, and returns a row per server.
func (d *doctor) watch(ctx context.Context, servers []probeServer, name, value string, present, authoritative bool, timeout time.Duration) []serverCheck {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	rows := make([]serverCheck, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		rows[i] = serverCheck{Server: srv.name, Address: srv.addrs[0]}
		wg.Go(func() {
			row := &rows[i]
			for poll := 1; ; poll++ {
				for _, addr := range srv.addrs {
					values, err := dns01.QueryTXT(ctx, addr, name, authoritative)
					row.Address = addr
					if err != nil {
						row.Error = err.Error()
						continue
					}
					row.Error = ""
					if slices.Contains(values, value) == present {
						row.AfterMS = time.Since(start).Milliseconds()
						row.Result = map[bool]string{true: "seen", false: "gone"}[present]
						return
					}
					break
				}
				if backoff.Sleep(ctx, pollSchedule.Delay(poll)) != nil {
					row.Result = map[bool]string{true: "not seen", false: "still served"}[present]
					if row.Error != "" && present {
						row.Result = "unreachable"
					}
					return
				}
			}
		})
	}
	wg.Wait()
	return rows
}

// checkCAA finds the CAA record set that applies to name (RFC 8659: the
// closest one walking up the tree) and checks that the CA may issue.
func (d *doctor) checkCAA(ctx context.Context, name string) {
	wildcard := strings.HasPrefix(name, "*.")
	base := strings.TrimPrefix(name, "*.")
	d.timed(name+": CAA", func(s *step) {
		var set []*dns.CAA
		var at string
		for cur := dns.Fqdn(base); cur != "."; {
			r, err := d.inspector.Resolve(ctx, cur, dns.TypeCAA)
			if err != nil {
				s.Status, s.Detail = statusWarn, fmt.Sprintf("looking up CAA: %v", err)
				return
			}
			for _, rr := range r.Answer {
				if c, ok := rr.(*dns.CAA); ok {
					set = append(set, c)
				}
			}
			if len(set) > 0 {
				at = cur
				break
			}
			_, next, _ := strings.Cut(cur, ".")
			if next == "" {
				next = "."
			}
			cur = next
		}
		if len(set) == 0 {
			s.Status, s.Detail = statusOK, "no CAA records: any CA may issue"
			return
		}
		tag := "issue"
		if wildcard && slices.ContainsFunc(set, func(c *dns.CAA) bool { return strings.EqualFold(c.Tag, "issuewild") }) {
			tag = "issuewild"
		}
		var allowed []string
		for _, c := range set {
			if strings.EqualFold(c.Tag, tag) {
				v, _, _ := strings.Cut(c.Value, ";")
				allowed = append(allowed, strings.TrimSpace(v))
			}
		}
		where := strings.TrimSuffix(at, ".")
		if len(allowed) == 0 {
			s.Status, s.Detail = statusOK, fmt.Sprintf("CAA at %s has no %s property: any CA may issue", where, tag)
			return
		}
		var may, mayNot []checkedCA
		for _, ca := range d.cas {
			switch {
			case len(ca.caaIDs) == 0:
			case slices.ContainsFunc(allowed, func(a string) bool {
				return slices.ContainsFunc(ca.caaIDs, func(id string) bool { return strings.EqualFold(a, id) })
			}):
				may = append(may, ca)
			default:
				mayNot = append(mayNot, ca)
			}
		}
		switch {
		case len(may) == 0 && len(mayNot) == 0:
			s.Status, s.Detail = statusWarn, fmt.Sprintf("CAA at %s allows %s; the CA's directory names no caaIdentities to compare", where, strings.Join(allowed, ", "))
		case len(mayNot) == 0:
			s.Status, s.Detail = statusOK, fmt.Sprintf("CAA %s at %s allows %s", tag, where, strings.Join(allowed, ", "))
		default:
			refused := mayNot[0]
			s.Status, s.Detail = statusFail, fmt.Sprintf("CAA %s at %s allows only %s, and the CA is %s: the CA will refuse to issue; add a CAA record: %s. CAA 0 %s %q",
				tag, where, strings.Join(quoteAll(allowed), ", "), strings.Join(refused.caaIDs, ", "), where, tag, refused.caaIDs[0])
			if len(may) > 0 {
				// Another CA may issue: names are obtained, after a
				// refusal each time the CA that may not is tried.
				s.Status = statusWarn
				s.Detail = fmt.Sprintf("CAA %s at %s allows %s but not %s (CA %s): every attempt there is refused before the next CA is tried; add a CAA record: %s. CAA 0 %s %q",
					tag, where, strings.Join(quoteAll(allowed), ", "), strings.Join(refused.caaIDs, ", "), refused.url, where, tag, refused.caaIDs[0])
			}
		}
	})
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// checkDNSSEC looks for a DS record of zone at its parent.
func (d *doctor) checkDNSSEC(ctx context.Context, name, zone string) {
	d.timed(name+": DNSSEC", func(s *step) {
		r, err := d.inspector.Resolve(ctx, zone, dns.TypeDS)
		if err != nil {
			s.Status, s.Detail = statusWarn, fmt.Sprintf("looking up DS: %v", err)
			return
		}
		for _, rr := range r.Answer {
			if _, ok := rr.(*dns.DS); ok {
				s.Status, s.Detail = statusOK, fmt.Sprintf("zone %s is signed (a DS record at its parent): the CA's validator checks the signatures, so a broken signature or a missing RRSIG on the challenge record fails validation", strings.TrimSuffix(zone, "."))
				return
			}
		}
		s.Status, s.Detail = statusOK, fmt.Sprintf("zone %s is not signed (no DS record at its parent)", strings.TrimSuffix(zone, "."))
	})
}
