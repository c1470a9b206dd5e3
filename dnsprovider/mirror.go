package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// ErrPartialWrite is returned (wrapped) by a provider from Mirror when a
// write reached some of its providers and could not be undone on them: the
// records may be in the zone on some providers and not on others. The
// caller should delete them (a delete goes to every provider); certfleet's
// DNS-01 solver does, and keeps the record in its journal until it has.
var ErrPartialWrite = errors.New("the write reached some providers and could not be undone")

// mirrorUndoTimeout bounds the deletes that undo a partial append when the
// caller's context has ended.
const mirrorUndoTimeout = 30 * time.Second

// Mirror returns a provider that writes to every one of providers: for a
// zone served by several DNS providers at once (Route 53 with Cloudflare as
// secondary, each with its own nameservers), whose challenge records must be
// on all of them or the CA's validation fails whenever it asks the other
// one.
//
// AppendRecords writes to every provider at once and succeeds only when all
// succeed. When one fails, the records are deleted again from the others
// (and from the failed one, if its error leaves open whether the write was
// applied); if that cleanup fails too, the error wraps ErrPartialWrite.
// DeleteRecords deletes from every provider and fails if any fails.
// GetRecords returns the records that every provider has, ListZones the
// zones that every provider lists. SetRecords writes to every provider; it
// cannot be undone (the earlier values are gone), so a failure on some of
// them wraps ErrPartialWrite when others succeeded.
//
// The providers' own nameservers must all be in the zone's NS records (as
// multi-provider DNS requires at the registry): certfleet's DNS-01 solver
// then checks, under its "all" and "auto" policies, that every nameserver of
// every provider serves a record before the CA is asked to validate it.
//
// The provider returned has the optional libdns interfaces that every one of
// providers has. Its Unwrap returns nil: it wraps several providers, not one.
// Mirror fails when it is given no provider or a nil one.
func Mirror(providers ...Provider) (Provider, error) {
	if len(providers) == 0 {
		return nil, errors.New("dnsprovider: Mirror: no providers: give the providers that serve the zone")
	}
	m := &mirror{}
	var parts []string
	for i, p := range providers {
		if orNil(p) == (nilProvider{}) {
			return nil, fmt.Errorf("dnsprovider: Mirror: provider %d is nil", i)
		}
		m.ps = append(m.ps, p)
		m.names = append(m.names, Name(p))
		parts = append(parts, describe(p))
	}
	m.label = label("dnsprovider.Mirror(" + strings.Join(parts, ", ") + ")")
	return expose(m, m.ps...), nil
}

type mirror struct {
	label
	ps    []Provider
	names []string
}

// Unwrap returns nil: a mirror wraps several providers.
func (m *mirror) Unwrap() Provider { return nil }

// ProviderName lists the mirrored providers, for errors and logs.
func (m *mirror) ProviderName() string { return "mirror(" + strings.Join(m.names, ", ") + ")" }

// each runs f(0), …, f(n-1) concurrently and returns their errors.
func each(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errs
}

// failures joins the errors of the providers that failed, each named.
func (m *mirror) failures(errs []error) error {
	var out []error
	for i, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("%s: %w", m.names[i], err))
		}
	}
	return errors.Join(out...)
}

// mayHaveApplied reports whether a failed write may have been applied
// anyway: its answer was lost, it timed out, or it was cut short.
func mayHaveApplied(err error) bool {
	return IsTransientAPIError(err) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrPartialWrite)
}

func (m *mirror) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	outs := make([][]libdns.Record, len(m.ps))
	errs := each(len(m.ps), func(i int) error {
		var err error
		outs[i], err = m.ps[i].AppendRecords(ctx, zone, recs)
		return err
	})
	failed := m.failures(errs)
	if failed == nil {
		return outs[0], nil
	}
	// Undo the write wherever it may have landed, even if ctx has ended.
	undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), mirrorUndoTimeout)
	defer cancel()
	anyTTL := withAnyTTL(recs)
	var wrote []string
	undoErrs := each(len(m.ps), func(i int) error {
		if errs[i] != nil && !mayHaveApplied(errs[i]) {
			return nil // refused: nothing to undo
		}
		_, err := m.ps[i].DeleteRecords(undo, zone, anyTTL)
		return err
	})
	for i := range m.ps {
		if errs[i] == nil {
			wrote = append(wrote, m.names[i])
		}
	}
	if undoFailed := m.failures(undoErrs); undoFailed != nil {
		return nil, fmt.Errorf("dnsprovider: mirror: append in zone %q failed (%w), and undoing it failed (%w): %w; delete the records to remove them from every provider",
			zone, failed, undoFailed, ErrPartialWrite)
	}
	if len(wrote) > 0 {
		return nil, fmt.Errorf("dnsprovider: mirror: append in zone %q failed, and was undone on %s: %w", zone, strings.Join(wrote, ", "), failed)
	}
	return nil, fmt.Errorf("dnsprovider: mirror: append in zone %q failed: %w", zone, failed)
}

// withAnyTTL returns recs with their TTLs cleared, so that a delete matches
// the records whatever TTL a provider stored them with.
func withAnyTTL(recs []libdns.Record) []libdns.Record {
	out := make([]libdns.Record, 0, len(recs))
	for _, rec := range recs {
		if rec == nil {
			continue
		}
		rr := rec.RR()
		rr.TTL = 0
		if parsed, err := rr.Parse(); err == nil {
			out = append(out, parsed)
		} else {
			out = append(out, rr)
		}
	}
	return out
}

func (m *mirror) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	outs := make([][]libdns.Record, len(m.ps))
	errs := each(len(m.ps), func(i int) error {
		var err error
		outs[i], err = m.ps[i].DeleteRecords(ctx, zone, recs)
		return err
	})
	if err := m.failures(errs); err != nil {
		return nil, fmt.Errorf("dnsprovider: mirror: delete in zone %q: %w", zone, err)
	}
	// Every record deleted anywhere, once.
	var out []libdns.Record
	for _, recs := range outs {
		for _, rec := range recs {
			if !containsRecord(out, rec, zone) {
				out = append(out, rec)
			}
		}
	}
	return out, nil
}

func (m *mirror) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	outs := make([][]libdns.Record, len(m.ps))
	errs := each(len(m.ps), func(i int) error {
		s, ok := m.ps[i].(libdns.RecordSetter)
		if !ok {
			return &OpError{Provider: m.names[i], Op: "set", Zone: zone, Err: ErrNotSupported}
		}
		var err error
		outs[i], err = s.SetRecords(ctx, zone, recs)
		return err
	})
	failed := m.failures(errs)
	if failed == nil {
		return outs[0], nil
	}
	for i := range m.ps {
		if errs[i] == nil {
			return nil, fmt.Errorf("dnsprovider: mirror: set in zone %q succeeded on %s but failed (%w): %w",
				zone, m.names[i], failed, ErrPartialWrite)
		}
	}
	return nil, fmt.Errorf("dnsprovider: mirror: set in zone %q: %w", zone, failed)
}

// GetRecords returns the records that every provider has (name, type and
// data compared; the first provider's copy is returned).
func (m *mirror) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	outs := make([][]libdns.Record, len(m.ps))
	errs := each(len(m.ps), func(i int) error {
		g, ok := m.ps[i].(libdns.RecordGetter)
		if !ok {
			return &OpError{Provider: m.names[i], Op: "get", Zone: zone, Err: ErrNotSupported}
		}
		var err error
		outs[i], err = g.GetRecords(ctx, zone)
		return err
	})
	if err := m.failures(errs); err != nil {
		return nil, fmt.Errorf("dnsprovider: mirror: get in zone %q: %w", zone, err)
	}
	var out []libdns.Record
	for _, rec := range outs[0] {
		onAll := true
		for _, other := range outs[1:] {
			onAll = onAll && containsRecord(other, rec, zone)
		}
		if onAll {
			out = append(out, rec)
		}
	}
	return out, nil
}

// ListZones returns the zones that every provider lists.
func (m *mirror) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	outs := make([][]libdns.Zone, len(m.ps))
	errs := each(len(m.ps), func(i int) error {
		l, ok := m.ps[i].(libdns.ZoneLister)
		if !ok {
			return &OpError{Provider: m.names[i], Op: "list", Err: ErrNotSupported}
		}
		var err error
		outs[i], err = l.ListZones(ctx)
		return err
	})
	if err := m.failures(errs); err != nil {
		return nil, fmt.Errorf("dnsprovider: mirror: list zones: %w", err)
	}
	count := map[string]int{}
	for _, zones := range outs {
		seen := map[string]bool{}
		for _, z := range zones {
			if c := canonical(z.Name); !seen[c] {
				seen[c] = true
				count[c]++
			}
		}
	}
	var out []libdns.Zone
	for _, z := range outs[0] {
		if c := canonical(z.Name); count[c] == len(m.ps) {
			count[c] = 0 // once
			out = append(out, z)
		}
	}
	return out, nil
}
