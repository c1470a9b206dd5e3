package dnsprovider

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/libdns/libdns"
)

// AuditOption configures Audit.
type AuditOption func(*auditor)

// AuditMember sets the member attribute of every audit record: which member
// of the fleet made the change. The default is the host name.
func AuditMember(id string) AuditOption {
	return func(a *auditor) { a.member = id }
}

// Audit returns p with one structured log record written to logger for every
// DNS record that an append, delete or set call changes or tries to change.
// A call with three records gives three audit records; each carries the
// call's result and duration. Reads are not logged.
//
// Each audit record has the message "dns change", level Info on success and
// Warn on failure, and these attributes: op ("append", "delete", "set"),
// provider, zone, name (the record's absolute name), type, data (the record
// value: DNS data is public), ttl, member, result ("ok", "not found" for a
// delete of a record that was not there, or the error text) and duration.
// Credentials are never logged: they are not part of a call. A nil logger
// means slog.Default().
func Audit(p Provider, logger *slog.Logger, opts ...AuditOption) Provider {
	p = orNil(p)
	if logger == nil {
		logger = slog.Default()
	}
	a := &auditor{label: label("dnsprovider.Audit(" + describe(p) + ")"), inner: p, logger: logger}
	a.member, _ = os.Hostname()
	for _, o := range opts {
		if o != nil {
			o(a)
		}
	}
	return expose(a, p)
}

type auditor struct {
	label
	inner  Provider
	logger *slog.Logger
	member string
}

func (a *auditor) Unwrap() Provider     { return a.inner }
func (a *auditor) ProviderName() string { return Name(a.inner) }

type recordsCall func(context.Context, string, []libdns.Record) ([]libdns.Record, error)

func (a *auditor) change(ctx context.Context, op, zone string, recs []libdns.Record, call recordsCall) ([]libdns.Record, error) {
	start := time.Now()
	out, err := call(ctx, zone, recs)
	d := time.Since(start)
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	for _, rec := range recs {
		if rec == nil {
			continue
		}
		result := "ok"
		switch {
		case err != nil:
			result = err.Error()
		case op == "delete" && !containsRecord(out, rec, zone):
			result = "not found"
		}
		rr := rec.RR()
		a.logger.LogAttrs(ctx, level, "dns change",
			slog.String("op", op),
			slog.String("provider", Name(a.inner)),
			slog.String("zone", zone),
			slog.String("name", libdns.AbsoluteName(rr.Name, zone)),
			slog.String("type", rr.Type),
			slog.String("data", rr.Data),
			slog.Duration("ttl", rr.TTL),
			slog.String("member", a.member),
			slog.String("result", result),
			slog.Duration("duration", d),
		)
	}
	return out, err
}

func (a *auditor) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return a.change(ctx, "append", zone, recs, a.inner.AppendRecords)
}

func (a *auditor) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return a.change(ctx, "delete", zone, recs, a.inner.DeleteRecords)
}

func (a *auditor) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	s, ok := a.inner.(libdns.RecordSetter)
	if !ok {
		return nil, &OpError{Provider: Name(a.inner), Op: "set", Zone: zone, Err: ErrNotSupported}
	}
	return a.change(ctx, "set", zone, recs, s.SetRecords)
}

func (a *auditor) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	g, ok := a.inner.(libdns.RecordGetter)
	if !ok {
		return nil, &OpError{Provider: Name(a.inner), Op: "get", Zone: zone, Err: ErrNotSupported}
	}
	return g.GetRecords(ctx, zone)
}

func (a *auditor) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	l, ok := a.inner.(libdns.ZoneLister)
	if !ok {
		return nil, &OpError{Provider: Name(a.inner), Op: "list", Err: ErrNotSupported}
	}
	return l.ListZones(ctx)
}
