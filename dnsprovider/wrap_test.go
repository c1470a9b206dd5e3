package dnsprovider

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/libdns/libdns"
)

type (
	ad     struct{ s *scripted }
	adG    struct{ ad }
	adS    struct{ ad }
	adL    struct{ ad }
	adGSL  struct{ ad }
	adGL   struct{ ad }
	getter interface {
		GetRecords(context.Context, string) ([]libdns.Record, error)
	}
)

func (a ad) AppendRecords(ctx context.Context, z string, r []libdns.Record) ([]libdns.Record, error) {
	return a.s.AppendRecords(ctx, z, r)
}
func (a ad) DeleteRecords(ctx context.Context, z string, r []libdns.Record) ([]libdns.Record, error) {
	return a.s.DeleteRecords(ctx, z, r)
}
func (a adG) GetRecords(ctx context.Context, z string) ([]libdns.Record, error) {
	return a.s.GetRecords(ctx, z)
}
func (a adS) SetRecords(ctx context.Context, z string, r []libdns.Record) ([]libdns.Record, error) {
	return a.s.SetRecords(ctx, z, r)
}
func (a adL) ListZones(ctx context.Context) ([]libdns.Zone, error) { return a.s.ListZones(ctx) }
func (a adGSL) GetRecords(ctx context.Context, z string) ([]libdns.Record, error) {
	return a.s.GetRecords(ctx, z)
}
func (a adGSL) SetRecords(ctx context.Context, z string, r []libdns.Record) ([]libdns.Record, error) {
	return a.s.SetRecords(ctx, z, r)
}
func (a adGSL) ListZones(ctx context.Context) ([]libdns.Zone, error) { return a.s.ListZones(ctx) }
func (a adGL) GetRecords(ctx context.Context, z string) ([]libdns.Record, error) {
	return a.s.GetRecords(ctx, z)
}
func (a adGL) ListZones(ctx context.Context) ([]libdns.Zone, error) { return a.s.ListZones(ctx) }

func interfaces(p Provider) (g, s, l bool) {
	_, g = p.(getter)
	_, s = p.(libdns.RecordSetter)
	_, l = p.(libdns.ZoneLister)
	return g, s, l
}

func TestWrappersKeepExactlyTheOptionalInterfacesOfTheWrapped(t *testing.T) {
	s := newScripted(t, "example.com.")
	inners := map[string]Provider{
		"append+delete only": ad{s},
		"getter":             adG{ad{s}},
		"setter":             adS{ad{s}},
		"lister":             adL{ad{s}},
		"getter+lister":      adGL{ad{s}},
		"all":                adGSL{ad{s}},
	}
	wrappers := map[string]func(Provider) Provider{
		"Guard":     func(p Provider) Provider { return Guard(p, "example.com") },
		"Audit":     func(p Provider) Provider { return Audit(p, slog.New(slog.DiscardHandler)) },
		"WithRetry": func(p Provider) Provider { return WithRetry(p, RetryPolicy{}) },
		"all three": func(p Provider) Provider {
			return Audit(Guard(WithRetry(p, RetryPolicy{}), "example.com"), slog.New(slog.DiscardHandler))
		},
	}
	for iname, inner := range inners {
		for wname, wrap := range wrappers {
			t.Run(wname+" of "+iname, func(t *testing.T) {
				w := wrap(inner)
				wg, ws, wl := interfaces(w)
				ig, is, il := interfaces(inner)
				if wg != ig || ws != is || wl != il {
					t.Fatalf("wrapper has getter/setter/lister %t/%t/%t, wrapped %t/%t/%t", wg, ws, wl, ig, is, il)
				}
				if wg {
					if _, err := w.(getter).GetRecords(context.Background(), "example.com."); err != nil {
						t.Fatal(err)
					}
				}
				u, ok := w.(interface{ Unwrap() Provider })
				if !ok {
					t.Fatal("wrapper has no Unwrap")
				}
				for {
					next, ok := u.Unwrap().(interface{ Unwrap() Provider })
					if !ok {
						break
					}
					u = next
				}
				if u.Unwrap() != inner {
					t.Fatal("Unwrap does not lead to the wrapped provider")
				}
				if Name(w) != "dnsprovider" {
					t.Errorf("Name(wrapper) = %q, want the wrapped provider's name", Name(w))
				}
			})
		}
	}
}

func TestWrappersOfNilProviderReturnErrors(t *testing.T) {
	for name, p := range map[string]Provider{
		"Guard":     Guard(nil, "example.com"),
		"Audit":     Audit((*scripted)(nil), slog.New(slog.DiscardHandler)),
		"WithRetry": WithRetry(nil, RetryPolicy{}),
	} {
		if _, err := p.AppendRecords(context.Background(), "example.com", []libdns.Record{txt("x", "v")}); !errors.Is(err, errNilProvider) {
			t.Errorf("%s(nil).AppendRecords: %v", name, err)
		}
	}
}
