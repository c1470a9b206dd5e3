// Package dnsprovider is the DNS side of certfleet's ACME DNS-01: the
// contract a DNS provider meets, a registry that builds providers by name from
// the environment, and wrappers that make any provider safer to use:
//
//   - Guard confines writes to a list of zones (least privilege);
//   - Audit logs one structured record per DNS change;
//   - WithRetry retries the provider's API calls that fail transiently
//     (HTTP 429, 5xx, throttling codes, timeouts), honouring Retry-After,
//     and fails fast on permanent errors.
//
// Any libdns provider that can append and delete records is a Provider.
// Provider packages, certfleet's own or anyone's, register themselves under
// a name when imported, like database/sql drivers, and read their settings
// through the getenv they are given (LookupEnv reads secrets, also from
// NAME_FILE paths):
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/cloudflare"
//
//	p, err := dnsprovider.FromEnv("cloudflare") // reads CLOUDFLARE_API_TOKEN
//	p = dnsprovider.Audit(dnsprovider.Guard(dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{}), "example.com"), logger)
//
// The DNS-01 solver that writes challenge records through a Provider is in
// package dnsprovider/dns01; this package and the provider packages do not
// link it (nor its ACME libraries; of the providers, only rfc2136 links
// miekg/dns, the DNS protocol it speaks).
//
// The wrappers keep the optional libdns interfaces (RecordGetter,
// RecordSetter, ZoneLister) of the provider they wrap: a type assertion on the
// wrapper succeeds exactly when it would on the wrapped provider. Each wrapper
// also has an Unwrap() Provider method. Formatting a wrapper (fmt, with
// any verb, or slog) shows what it is and the name of what it wraps, never
// a credential: "dnsprovider.Guard(dnsprovider.WithRetry(cloudflare),
// zones: example.com)".
package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/libdns/libdns"
)

// Provider is what certfleet needs of a DNS provider: libdns's RecordAppender
// and RecordDeleter. Providers that also implement libdns.RecordGetter,
// libdns.RecordSetter or libdns.ZoneLister are used for more (cleanup checks,
// idempotent retries).
type Provider interface {
	libdns.RecordAppender
	libdns.RecordDeleter
}

// ErrNotSupported is returned (wrapped) when an optional operation is called
// on a provider that does not implement it.
var ErrNotSupported = errors.New("operation not supported by the DNS provider")

// fullProvider is what every wrapper implements internally; expose hides the
// optional methods that the wrapped provider lacks.
type fullProvider interface {
	Provider
	libdns.RecordGetter
	libdns.RecordSetter
	libdns.ZoneLister
	wrapper
}

// wrapper is the part of a wrapper that is always visible, its label's
// formatting methods included: printing a wrapper shows the label, never
// the credentials of the provider inside.
type wrapper interface {
	Provider
	Unwrap() Provider
	ProviderName() string
	fmt.Stringer
	fmt.GoStringer
	fmt.Formatter
	slog.LogValuer
	describe() string
}

// expose returns w with exactly the optional interfaces that every one of
// inners has.
func expose(w fullProvider, inners ...Provider) Provider {
	g, s, l := true, true, true
	for _, inner := range inners {
		_, gi := inner.(libdns.RecordGetter)
		_, si := inner.(libdns.RecordSetter)
		_, li := inner.(libdns.ZoneLister)
		g, s, l = g && gi, s && si, l && li
	}
	type (
		getter = libdns.RecordGetter
		setter = libdns.RecordSetter
		lister = libdns.ZoneLister
	)
	switch {
	case g && s && l:
		return w
	case g && s:
		return struct {
			wrapper
			getter
			setter
		}{w, w, w}
	case g && l:
		return struct {
			wrapper
			getter
			lister
		}{w, w, w}
	case s && l:
		return struct {
			wrapper
			setter
			lister
		}{w, w, w}
	case g:
		return struct {
			wrapper
			getter
		}{w, w}
	case s:
		return struct {
			wrapper
			setter
		}{w, w}
	case l:
		return struct {
			wrapper
			lister
		}{w, w}
	default:
		return struct{ wrapper }{w}
	}
}

// errNilProvider is what the wrappers return when they wrap nothing.
var errNilProvider = errors.New("dnsprovider: no DNS provider (nil) was given to the wrapper")

// nilProvider stands in for a nil provider so that wrappers never panic.
type nilProvider struct{}

func (nilProvider) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errNilProvider
}

func (nilProvider) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errNilProvider
}

func orNil(p Provider) Provider {
	if p == nil {
		return nilProvider{}
	}
	if v := reflect.ValueOf(p); v.Kind() == reflect.Pointer && v.IsNil() {
		return nilProvider{}
	}
	return p
}

// Name returns a short name for p, for errors and logs: the name it reports
// through a ProviderName() string method, or else the last element of the
// import path of its type's package ("cloudflare" for a
// *cloudflare.Provider from github.com/libdns/cloudflare).
func Name(p Provider) string {
	if n, ok := p.(interface{ ProviderName() string }); ok {
		return n.ProviderName()
	}
	t := reflect.TypeOf(p)
	if t == nil {
		return "nil"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path := t.PkgPath(); path != "" {
		return path[strings.LastIndex(path, "/")+1:]
	}
	return t.String()
}

// canonical returns name in lower case without the trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// within reports whether the canonical name is zone or below it.
func within(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// absName returns the canonical absolute name of a record in zone.
func absName(rr libdns.RR, zone string) string {
	return canonical(libdns.AbsoluteName(rr.Name, zone))
}
