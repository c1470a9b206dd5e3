package route53

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/libdns/libdns"
)

// zoneName returns zone as Route 53 names zones: lower case, trailing dot.
// libdns/route53 compares zone names byte for byte.
func zoneName(zone string) string {
	return strings.ToLower(strings.TrimSuffix(zone, ".")) + "."
}

// do runs one call into libdns/route53, turning a panic in it (as on a
// malformed API answer) into an error, and naming the operation and zone.
func (p *Provider) do(op, zone string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("libdns/route53 failed on an unexpected API answer: %v", v)
		}
		if err != nil {
			err = p.convert(err, zone)
			err = &dnsprovider.OpError{Provider: "route53", Op: op, Zone: zone, Attempts: 1, Temporary: dnsprovider.IsTransientAPIError(err), Err: err}
		}
	}()
	return f()
}

// convert turns an AWS API error into a *dnsprovider.StatusError, with the
// credentials removed from its text, and rewords the errors a user can act
// on.
func (p *Provider) convert(err error, zone string) error {
	if strings.HasPrefix(err.Error(), "HostedZoneNotFound:") {
		return fmt.Errorf("no Route 53 hosted zone named %q is visible to these credentials (set %s to name it): %w", zoneName(zone), EnvHostedZoneID, err)
	}
	// smithy.APIError's methods; not named, to keep smithy-go an indirect
	// dependency.
	var api interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if !errors.As(err, &api) {
		return p.redact(err)
	}
	se := &dnsprovider.StatusError{Code: api.ErrorCode(), Message: api.ErrorMessage(), Err: err}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) {
		se.StatusCode = status.HTTPStatusCode()
	}
	var icb *types.InvalidChangeBatch
	if errors.As(err, &icb) && len(icb.Messages) > 0 {
		se.Message = strings.Join(icb.Messages, "; ")
	}
	switch se.StatusCode {
	case 401, 403:
		se.Message += "; check the AWS credentials and that they allow route53:ListHostedZonesByName, ListResourceRecordSets, ChangeResourceRecordSets and GetChange"
	}
	if msg := p.redactText(se.Message); msg != se.Message {
		// The AWS error holds the text too: drop it.
		se.Message, se.Err = msg, nil
	}
	return se
}

// redactText removes the credentials from s (AWS echoes signed headers,
// the session token among them, in SignatureDoesNotMatch messages).
func (p *Provider) redactText(s string) string {
	for _, secret := range []string{p.cfg.SecretAccessKey, p.cfg.SessionToken} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

func (p *Provider) redact(err error) error {
	if msg := p.redactText(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// isDuplicate reports whether err is Route 53 refusing a change for a value
// that is already in the record set.
func isDuplicate(err error) bool {
	var icb *types.InvalidChangeBatch
	if !errors.As(err, &icb) {
		return false
	}
	text := icb.ErrorMessage() + " " + strings.Join(icb.Messages, " ")
	return strings.Contains(text, "Duplicate Resource Record") || strings.Contains(text, "but it already exists")
}

// AppendRecords adds records to the zone (read, merge, UPSERT). A value
// already in the record set counts as added: appends are idempotent, so a
// retry after a lost answer does not fail.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("append", zone, func() error {
		var err error
		out, err = p.inner.AppendRecords(ctx, zoneName(zone), recs)
		if err == nil || !isDuplicate(err) {
			return err
		}
		have, gerr := p.inner.GetRecords(ctx, zoneName(zone))
		if gerr != nil {
			return gerr
		}
		var present, missing []libdns.Record
		for _, rec := range recs {
			if contains(have, rec, zone) {
				present = append(present, rec)
			} else {
				missing = append(missing, rec)
			}
		}
		out = present
		if len(missing) == 0 {
			return nil
		}
		added, err := p.inner.AppendRecords(ctx, zoneName(zone), missing)
		out = append(out, added...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// contains reports whether have holds rec's name, type and data.
func contains(have []libdns.Record, rec libdns.Record, zone string) bool {
	want := rec.RR()
	name := strings.ToLower(libdns.AbsoluteName(want.Name, zoneName(zone)))
	for _, h := range have {
		rr := h.RR()
		if rr.Type == want.Type && rr.Data == want.Data && strings.ToLower(libdns.AbsoluteName(rr.Name, zoneName(zone))) == name {
			return true
		}
	}
	return false
}

// DeleteRecords deletes the records from the zone that match recs and
// returns those deleted; records not in the zone are ignored.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("delete", zone, func() error {
		var err error
		out, err = p.inner.DeleteRecords(ctx, zoneName(zone), recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRecords returns the zone's records.
func (p *Provider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("get", zone, func() error {
		var err error
		out, err = p.inner.GetRecords(ctx, zoneName(zone))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetRecords replaces the record set of each (name, type) in recs.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("set", zone, func() error {
		var err error
		out, err = p.inner.SetRecords(ctx, zoneName(zone), recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
