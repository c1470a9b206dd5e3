package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/internal/backoff"
)

// RetryPolicy says how WithRetry retries. The zero value is a sensible policy
// for ACME DNS-01: up to 6 attempts within 2 minutes, waits from 1 s doubling
// to 30 s.
type RetryPolicy struct {
	// MaxAttempts is the most calls made for one operation, the first
	// included. Zero or less means 6; 1 disables retries (errors are still
	// classified and named).
	MaxAttempts int

	// MaxElapsed bounds the time from the first call to the start of the
	// last: a retry whose wait would end later is not made. Zero or less
	// means 2 minutes. The context's deadline bounds it too.
	MaxElapsed time.Duration

	// BaseDelay is the wait before the first retry when the provider does not
	// say how long to wait; each later wait doubles, with jitter (each wait
	// is between half and all of its nominal value). Zero or less means 1 s.
	BaseDelay time.Duration

	// MaxDelay caps the nominal wait between two attempts. Zero or less
	// means 30 s. A provider's Retry-After is honoured even when longer, as
	// long as the retry still fits in MaxElapsed and the context.
	MaxDelay time.Duration
}

// WithDefaults returns p with each field that is zero or less set to its
// default.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = 2 * time.Minute
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	return p
}

// WithRetry returns p with every call to the provider's API retried while it
// fails with a transient error (see IsTransientAPIError): HTTP 429 and 5xx
// answers, throttling error codes, timeouts. It waits with exponential
// backoff and jitter, and at least as long
// as the provider's Retry-After asks; it never waits past the context's
// deadline or the policy's MaxElapsed. Permanent errors (bad credentials,
// unknown zone, invalid records) are returned at once. Every error it returns
// is an *OpError naming the provider, the operation, the zone and the cause.
//
// Retried appends are idempotent when p can list records (implements
// libdns.RecordGetter): before a retry, records that the failed attempt did
// create after all are not appended again. Deletes and sets are idempotent by
// the libdns contract.
func WithRetry(p Provider, policy RetryPolicy) Provider {
	p = orNil(p)
	return expose(&retrier{label: label("dnsprovider.WithRetry(" + describe(p) + ")"), inner: p, name: Name(p), policy: policy.WithDefaults()}, p)
}

// HasRetry reports whether p is, or wraps (through Unwrap() Provider
// methods), a provider returned by WithRetry: wrapping it again would
// multiply the attempts.
func HasRetry(p Provider) bool {
	retrierType := reflect.TypeFor[*retrier]()
	for p != nil {
		if reflect.TypeOf(p) == retrierType {
			return true
		}
		// expose wraps a wrapper in a struct whose first field holds it.
		if v := reflect.ValueOf(p); v.Kind() == reflect.Struct && v.NumField() > 0 {
			if f := v.Field(0); f.Kind() == reflect.Interface && !f.IsNil() && f.Elem().Type() == retrierType {
				return true
			}
		}
		u, ok := p.(interface{ Unwrap() Provider })
		if !ok {
			return false
		}
		p = u.Unwrap()
	}
	return false
}

type retrier struct {
	label
	inner  Provider
	name   string
	policy RetryPolicy
}

func (r *retrier) Unwrap() Provider     { return r.inner }
func (r *retrier) ProviderName() string { return r.name }

// do calls f until it succeeds, fails permanently, or the policy or ctx ends
// the retries.
func (r *retrier) do(ctx context.Context, op, zone string, f func(attempt int) error) error {
	start := time.Now()
	schedule := backoff.Policy{Base: r.policy.BaseDelay, Max: r.policy.MaxDelay}
	for attempt := 1; ; attempt++ {
		err := f(attempt)
		if err == nil {
			return nil
		}
		// fail returns the error for the last attempt; note, if not nil,
		// wraps the cause to say why there is no retry.
		fail := func(temporary bool, note func(cause error) error) error {
			oe := &OpError{Provider: r.name, Op: op, Zone: zone, Err: err}
			// A provider that names itself, the operation and the zone
			// (certfleet's own providers do) is not named twice.
			if inner, ok := err.(*OpError); ok {
				c := *inner
				oe = &c
			}
			oe.Attempts, oe.Temporary = attempt, temporary
			if note != nil {
				oe.Err = note(oe.Err)
			}
			return oe
		}
		if ctx.Err() != nil {
			if errors.Is(err, ctx.Err()) {
				return fail(false, nil)
			}
			return fail(false, func(cause error) error {
				return fmt.Errorf("%w (not retried: %w)", cause, ctx.Err())
			})
		}
		if !IsTransientAPIError(err) {
			return fail(false, nil)
		}
		if attempt >= r.policy.MaxAttempts {
			return fail(true, nil)
		}
		wait := schedule.Delay(attempt)
		if ra, ok := RetryAfter(err); ok && ra > wait {
			wait = ra
		}
		if time.Since(start)+wait > r.policy.MaxElapsed {
			return fail(true, func(cause error) error {
				return fmt.Errorf("%w (not retried: waiting %s more would exceed the retry policy's MaxElapsed %s)", cause, wait, r.policy.MaxElapsed)
			})
		}
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
			return fail(true, func(cause error) error {
				return fmt.Errorf("%w (not retried: waiting %s more would pass the context deadline)", cause, wait)
			})
		}
		if serr := backoff.Sleep(ctx, wait); serr != nil {
			return fail(true, func(cause error) error {
				return fmt.Errorf("%w (while waiting to retry: %w)", cause, serr)
			})
		}
	}
}

func (r *retrier) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var done []libdns.Record // created by earlier attempts that reported failure
	var out []libdns.Record
	err := r.do(ctx, "append", zone, func(attempt int) error {
		out = nil
		todo := recs
		if attempt > 1 {
			done, todo = r.alreadyPresent(ctx, zone, recs)
		}
		if len(todo) == 0 {
			return nil
		}
		res, err := r.inner.AppendRecords(ctx, zone, todo)
		out = res
		return err
	})
	if err != nil {
		return nil, err
	}
	return append(done, out...), nil
}

// alreadyPresent splits recs into those that are in the zone already and the
// rest. When the zone cannot be read, it assumes none are present.
func (r *retrier) alreadyPresent(ctx context.Context, zone string, recs []libdns.Record) (present, missing []libdns.Record) {
	g, ok := r.inner.(libdns.RecordGetter)
	if !ok {
		return nil, recs
	}
	have, err := g.GetRecords(ctx, zone)
	if err != nil {
		return nil, recs
	}
	for _, rec := range recs {
		if containsRecord(have, rec, zone) {
			present = append(present, rec)
		} else {
			missing = append(missing, rec)
		}
	}
	return present, missing
}

// containsRecord reports whether have holds a record with rec's name, type
// and data (TTL aside).
func containsRecord(have []libdns.Record, rec libdns.Record, zone string) bool {
	want := rec.RR()
	name := absName(want, zone)
	for _, h := range have {
		rr := h.RR()
		if rr.Type == want.Type && rr.Data == want.Data && absName(rr, zone) == name {
			return true
		}
	}
	return false
}

func (r *retrier) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := r.do(ctx, "delete", zone, func(int) error {
		var err error
		out, err = r.inner.DeleteRecords(ctx, zone, recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *retrier) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	s, ok := r.inner.(libdns.RecordSetter)
	if !ok {
		return nil, &OpError{Provider: r.name, Op: "set", Zone: zone, Err: ErrNotSupported}
	}
	var out []libdns.Record
	err := r.do(ctx, "set", zone, func(int) error {
		var err error
		out, err = s.SetRecords(ctx, zone, recs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *retrier) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	g, ok := r.inner.(libdns.RecordGetter)
	if !ok {
		return nil, &OpError{Provider: r.name, Op: "get", Zone: zone, Err: ErrNotSupported}
	}
	var out []libdns.Record
	err := r.do(ctx, "get", zone, func(int) error {
		var err error
		out, err = g.GetRecords(ctx, zone)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (r *retrier) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	l, ok := r.inner.(libdns.ZoneLister)
	if !ok {
		return nil, &OpError{Provider: r.name, Op: "list", Err: ErrNotSupported}
	}
	var out []libdns.Zone
	err := r.do(ctx, "list", "", func(int) error {
		var err error
		out, err = l.ListZones(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
