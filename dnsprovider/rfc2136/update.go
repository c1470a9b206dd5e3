package rfc2136

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/dnsprovider"
)

// fudge is the clock difference, in seconds, that a signature allows.
const fudge = 300

// origin returns zone as a canonical absolute name.
func origin(zone string) string {
	return strings.ToLower(dns.Fqdn(strings.TrimSpace(zone)))
}

// fail wraps err, if not nil, in a *dnsprovider.OpError.
func fail(op, zone string, err error) error {
	if err == nil {
		return nil
	}
	return &dnsprovider.OpError{Provider: "rfc2136", Op: op, Zone: zone, Attempts: 1, Temporary: dnsprovider.IsTransientAPIError(err), Err: err}
}

// sign adds the TSIG record to m, when the provider has a key.
func (p *Provider) sign(m *dns.Msg) {
	if p.key != nil {
		m.SetTsig(p.key.name, p.key.algorithm, fudge, time.Now().Unix())
	}
}

// update sends one DNS UPDATE for zone, with the changes build adds, and
// checks the answer.
func (p *Provider) update(ctx context.Context, op, zone string, build func(m *dns.Msg, origin string) error) error {
	o := origin(zone)
	m := new(dns.Msg)
	m.SetUpdate(o)
	if err := build(m, o); err != nil {
		return fail(op, zone, err)
	}
	release, err := p.acquire(ctx)
	if err != nil {
		return fail(op, zone, err)
	}
	defer release()
	p.sign(m)
	c := &dns.Client{Net: "tcp", Timeout: p.cfg.Timeout}
	if p.key != nil {
		c.TsigProvider = p.key
	}
	r, _, err := c.ExchangeContext(ctx, m, p.cfg.Nameserver)
	return fail(op, zone, p.answerError(ctx, r, err, o))
}

// answerError turns the outcome of an exchange into an error that says what
// the server refused and what would fix it.
func (p *Provider) answerError(ctx context.Context, r *dns.Msg, err error, zone string) error {
	if r != nil {
		// miekg/dns does not check the signature of a NOTAUTH answer (it
		// fails with ErrAuth first); the TSIG error is in the answer.
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			return p.keyRefused(t.Error, r)
		}
	}
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		return p.keyRefused(ref.tsigError, r)
	case err != nil && r == nil || err != nil && r.Rcode == dns.RcodeSuccess:
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("nameserver %s: %w (%w)", p.cfg.Nameserver, err, context.Cause(ctx))
		}
		return fmt.Errorf("nameserver %s: %w", p.cfg.Nameserver, err)
	case r.Rcode != dns.RcodeSuccess:
		// A signed answer without TSIG error: the server accepted the key.
		return p.rcodeError(r.Rcode, zone, r.IsTsig() != nil)
	}
	return nil
}

// keyRefused is the error for an answer whose TSIG record carries an error.
func (p *Provider) keyRefused(tsigError uint16, r *dns.Msg) error {
	why := "the server refused it"
	switch tsigError {
	case dns.RcodeBadKey:
		why = "the server does not know a key of that name and algorithm (check the key name and algorithm against the server's key clause)"
	case dns.RcodeBadSig:
		why = "the signature did not verify (the secret or the algorithm differs from the server's)"
	case dns.RcodeBadTime:
		why = fmt.Sprintf("the clocks of this host and the server differ by more than %d seconds", fudge)
	}
	code := tsigErrorName(tsigError)
	if r != nil && r.Rcode != dns.RcodeSuccess {
		code = dns.RcodeToString[r.Rcode] + "/" + code
	}
	name := ""
	if p.key != nil {
		name = strings.TrimSuffix(p.key.name, ".")
	}
	return &dnsprovider.StatusError{
		Code:    code,
		Message: fmt.Sprintf("nameserver %s refused TSIG key %q: %s", p.cfg.Nameserver, name, why),
		Err:     ErrKeyRefused,
	}
}

// rcodeError is the error for an unsuccessful RCODE.
// keyAccepted says that the server signed its answer without TSIG error.
func (p *Provider) rcodeError(rcode int, zone string, keyAccepted bool) error {
	zone = strings.TrimSuffix(zone, ".")
	var msg string
	var cause error
	switch rcode {
	case dns.RcodeRefused:
		if p.key == nil {
			msg = fmt.Sprintf("nameserver %s refused the unsigned update of zone %q: it allows updates by TSIG key only, or not from this address (set the key, or allow-update / update-policy on the server)", p.cfg.Nameserver, zone)
		} else {
			msg = fmt.Sprintf("nameserver %s refused the update of zone %q: TSIG key %q is not allowed to change it (allow-update / update-policy on the server)", p.cfg.Nameserver, zone, strings.TrimSuffix(p.key.name, "."))
		}
	case dns.RcodeNotAuth:
		if keyAccepted || p.key == nil {
			msg = fmt.Sprintf("nameserver %s is not authoritative for zone %q: send updates to the zone's primary, and check the zone name", p.cfg.Nameserver, zone)
		} else {
			msg = fmt.Sprintf("nameserver %s refused TSIG key %q, or is not authoritative for zone %q: send updates to the zone's primary with a key it knows", p.cfg.Nameserver, p.keyLabel(), zone)
			cause = ErrKeyRefused
		}
	case dns.RcodeNotZone:
		msg = fmt.Sprintf("a record is outside zone %q", zone)
	case dns.RcodeServerFailure:
		msg = fmt.Sprintf("nameserver %s failed to apply the update of zone %q (is the zone loaded, and its directory writable?)", p.cfg.Nameserver, zone)
	case dns.RcodeNotImplemented:
		msg = fmt.Sprintf("nameserver %s does not implement dynamic updates (RFC 2136)", p.cfg.Nameserver)
	case dns.RcodeNameError:
		msg = fmt.Sprintf("nameserver %s does not serve zone %q", p.cfg.Nameserver, zone)
	default:
		msg = fmt.Sprintf("nameserver %s answered the update of zone %q with an error", p.cfg.Nameserver, zone)
	}
	code, ok := dns.RcodeToString[rcode]
	if !ok {
		code = fmt.Sprintf("RCODE%d", rcode)
	}
	return &dnsprovider.StatusError{Code: code, Message: msg, Err: cause}
}

// toRR converts rec, in the zone origin, to a DNS record with its data.
func toRR(rec libdns.Record, origin string) (dns.RR, error) {
	rr := rec.RR()
	name, err := ownerName(rr.Name, origin)
	if err != nil {
		return nil, err
	}
	ttl := uint32(max(rr.TTL, 0) / time.Second)
	if strings.EqualFold(rr.Type, "TXT") {
		return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: chunks(rr.Data)}, nil
	}
	if rr.Type == "" || rr.Data == "" {
		return nil, fmt.Errorf("record %q has no type or no data", rr.Name)
	}
	out, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, ttl, rr.Type, rr.Data))
	if err != nil {
		return nil, fmt.Errorf("record %q %s %q: %w", rr.Name, rr.Type, rr.Data, err)
	}
	if out == nil {
		return nil, fmt.Errorf("record %q %s has no data", rr.Name, rr.Type)
	}
	return out, nil
}

// ownerName returns the absolute name of a record named name in origin, and
// checks that it is in the zone.
func ownerName(name, origin string) (string, error) {
	abs := strings.ToLower(libdns.AbsoluteName(name, origin))
	if !strings.HasSuffix(abs, ".") {
		abs += "."
	}
	if _, ok := dns.IsDomainName(abs); !ok {
		return "", fmt.Errorf("record name %q is not a domain name", name)
	}
	if !dns.IsSubDomain(origin, abs) {
		return "", fmt.Errorf("record name %q is not in zone %q", name, strings.TrimSuffix(origin, "."))
	}
	return abs, nil
}

// chunks splits a TXT value into the 255-byte strings a TXT record holds.
func chunks(s string) []string {
	if s == "" {
		return []string{""}
	}
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// fromRR converts a DNS record of the zone origin to a libdns record.
func fromRR(rr dns.RR, origin string) (libdns.Record, error) {
	h := rr.Header()
	out := libdns.RR{
		Name: libdns.RelativeName(h.Name, origin),
		TTL:  time.Duration(h.Ttl) * time.Second,
		Type: dns.TypeToString[h.Rrtype],
	}
	if txt, ok := rr.(*dns.TXT); ok {
		out.Data = strings.Join(txt.Txt, "")
	} else {
		out.Data = strings.TrimPrefix(strings.TrimPrefix(rr.String(), h.String()), "\t")
	}
	if out.Type == "" {
		out.Type = fmt.Sprintf("TYPE%d", h.Rrtype)
	}
	return out.Parse()
}

// AppendRecords adds recs to the zone in one update. Adding a record the
// zone has already is no change (RFC 2136), so appends are idempotent.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	err := p.update(ctx, "append", zone, func(m *dns.Msg, o string) error {
		for _, rec := range recs {
			rr, err := toRR(rec, o)
			if err != nil {
				return err
			}
			m.Insert([]dns.RR{rr})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// DeleteRecords deletes the records matching recs from the zone in one
// update: a record with type and data deletes that record, one without data
// every record of its name and type, one without type every record of its
// name. Records not in the zone are no change. It returns recs: RFC 2136
// does not say which records were there.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	err := p.update(ctx, "delete", zone, func(m *dns.Msg, o string) error {
		for _, rec := range recs {
			rr := rec.RR()
			name, err := ownerName(rr.Name, o)
			if err != nil {
				return err
			}
			switch {
			case rr.Type == "":
				m.RemoveName([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name}}})
			case rr.Data == "":
				t, ok := dns.StringToType[strings.ToUpper(rr.Type)]
				if !ok {
					return fmt.Errorf("record %q has an unknown type %q", rr.Name, rr.Type)
				}
				m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: t}}})
			default:
				full, err := toRR(rec, o)
				if err != nil {
					return err
				}
				m.Remove([]dns.RR{full})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// SetRecords replaces, in one update, every record set (name and type) in
// recs by the records of recs.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	err := p.update(ctx, "set", zone, func(m *dns.Msg, o string) error {
		var rrs []dns.RR
		seen := map[[2]string]bool{}
		for _, rec := range recs {
			rr, err := toRR(rec, o)
			if err != nil {
				return err
			}
			rrs = append(rrs, rr)
			key := [2]string{rr.Header().Name, dns.TypeToString[rr.Header().Rrtype]}
			if !seen[key] {
				seen[key] = true
				m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: key[0], Rrtype: rr.Header().Rrtype}}})
			}
		}
		m.Insert(rrs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// GetRecords returns the zone's records by zone transfer (AXFR), which the
// server must allow for the key (allow-transfer { key name; }).
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	recs, err := p.transfer(ctx, origin(zone))
	if err != nil {
		return nil, fail("get", zone, err)
	}
	return recs, nil
}

// acquire waits for a free exchange slot; release frees it.
func (p *Provider) acquire(ctx context.Context) (release func(), err error) {
	select {
	case p.slots <- struct{}{}:
		return func() { <-p.slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for one of %d exchanges with nameserver %s to end: %w", maxInFlight, p.cfg.Nameserver, context.Cause(ctx))
	}
}

func (p *Provider) transfer(ctx context.Context, o string) ([]libdns.Record, error) {
	release, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	conn, err := (&net.Dialer{Timeout: p.cfg.Timeout}).DialContext(ctx, "tcp", p.cfg.Nameserver)
	if err != nil {
		return nil, fmt.Errorf("nameserver %s: %w", p.cfg.Nameserver, err)
	}
	// Transfer takes no context: closing the connection ends it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	t := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, ReadTimeout: p.cfg.Timeout, WriteTimeout: p.cfg.Timeout}
	if p.key != nil {
		t.TsigProvider = p.key
	}
	q := new(dns.Msg)
	q.SetAxfr(o)
	p.sign(q)
	envelopes, err := t.In(q, p.cfg.Nameserver)
	if err != nil {
		conn.Close()
		return nil, p.transferError(ctx, err, o)
	}
	var out []libdns.Record
	var failed error
	soas := 0
	for e := range envelopes { // drained to the end: In's goroutine then returns
		if failed != nil {
			continue
		}
		if e.Error != nil {
			failed = p.transferError(ctx, e.Error, o)
			continue
		}
		for _, rr := range e.RR {
			if rr.Header().Rrtype == dns.TypeSOA {
				if soas++; soas > 1 {
					continue // the transfer ends with the SOA again
				}
			}
			rec, err := fromRR(rr, o)
			if err != nil {
				failed = fmt.Errorf("zone transfer of %q: record %q: %w", strings.TrimSuffix(o, "."), rr.Header().Name, err)
				break
			}
			out = append(out, rec)
		}
	}
	if failed != nil {
		return nil, failed
	}
	return out, nil
}

// transferError explains the error of a zone transfer.
func (p *Provider) transferError(ctx context.Context, err error, o string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("zone transfer of %q from %s: %w", strings.TrimSuffix(o, "."), p.cfg.Nameserver, context.Cause(ctx))
	}
	var ref *refusal
	if errors.As(err, &ref) {
		return p.keyRefused(ref.tsigError, nil)
	}
	if errors.Is(err, dns.ErrAuth) {
		// A NOTAUTH answer, whose TSIG error miekg/dns's transfer drops.
		return &dnsprovider.StatusError{Code: "NOTAUTH", Err: ErrKeyRefused, Message: fmt.Sprintf(
			"nameserver %s refused TSIG key %q for the zone transfer of %q: the server does not know the key, or the secret or algorithm differs from the server's",
			p.cfg.Nameserver, p.keyLabel(), strings.TrimSuffix(o, "."))}
	}
	var rcode int
	if _, serr := fmt.Sscanf(strings.TrimPrefix(err.Error(), "dns: "), "bad xfr rcode: %d", &rcode); serr == nil {
		if rcode == dns.RcodeRefused || rcode == dns.RcodeNotAuth {
			return &dnsprovider.StatusError{Code: dns.RcodeToString[rcode], Message: fmt.Sprintf(
				"nameserver %s refused the zone transfer of %q: allow it for the key (allow-transfer { key %s; })",
				p.cfg.Nameserver, strings.TrimSuffix(o, "."), p.keyLabel())}
		}
		return p.rcodeError(rcode, o, false)
	}
	return fmt.Errorf("zone transfer of %q from %s: %w", strings.TrimSuffix(o, "."), p.cfg.Nameserver, err)
}

func (p *Provider) keyLabel() string {
	if p.key == nil {
		return "<name>"
	}
	return strings.TrimSuffix(p.key.name, ".")
}

var (
	_ dnsprovider.Provider = (*Provider)(nil)
	_ libdns.RecordGetter  = (*Provider)(nil)
	_ libdns.RecordSetter  = (*Provider)(nil)
	_ fmt.Formatter        = Config{}
)
