package dnsprovider

import (
	"context"
	"time"

	"github.com/libdns/libdns"
)

// Observe returns p with every call reported to observe after it returns:
// the operation ("append", "delete", "set", "get", "list"), its error and
// its duration. It is for metrics: observe must not block, and never sees
// record data. Optional libdns interfaces are kept exactly as p has them.
func Observe(p Provider, observe func(op string, err error, d time.Duration)) Provider {
	p = orNil(p)
	return expose(&observer{label: label("dnsprovider.Observe(" + describe(p) + ")"), inner: p, name: Name(p), observe: observe}, p)
}

type observer struct {
	label
	inner   Provider
	name    string
	observe func(string, error, time.Duration)
}

func (o *observer) Unwrap() Provider     { return o.inner }
func (o *observer) ProviderName() string { return o.name }

// call runs f and reports it as op.
func (o *observer) call(op string, f func() error) {
	start := time.Now()
	err := f()
	o.observe(op, err, time.Since(start))
}

func (o *observer) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) (out []libdns.Record, err error) {
	o.call("append", func() error { out, err = o.inner.AppendRecords(ctx, zone, recs); return err })
	return out, err
}

func (o *observer) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) (out []libdns.Record, err error) {
	o.call("delete", func() error { out, err = o.inner.DeleteRecords(ctx, zone, recs); return err })
	return out, err
}

func (o *observer) SetRecords(ctx context.Context, zone string, recs []libdns.Record) (out []libdns.Record, err error) {
	s, ok := o.inner.(libdns.RecordSetter)
	if !ok {
		return nil, &OpError{Provider: o.name, Op: "set", Zone: zone, Err: ErrNotSupported}
	}
	o.call("set", func() error { out, err = s.SetRecords(ctx, zone, recs); return err })
	return out, err
}

func (o *observer) GetRecords(ctx context.Context, zone string) (out []libdns.Record, err error) {
	g, ok := o.inner.(libdns.RecordGetter)
	if !ok {
		return nil, &OpError{Provider: o.name, Op: "get", Zone: zone, Err: ErrNotSupported}
	}
	o.call("get", func() error { out, err = g.GetRecords(ctx, zone); return err })
	return out, err
}

func (o *observer) ListZones(ctx context.Context) (out []libdns.Zone, err error) {
	l, ok := o.inner.(libdns.ZoneLister)
	if !ok {
		return nil, &OpError{Provider: o.name, Op: "list", Err: ErrNotSupported}
	}
	o.call("list", func() error { out, err = l.ListZones(ctx); return err })
	return out, err
}
