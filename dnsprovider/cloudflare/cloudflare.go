// Package cloudflare is certfleet's Cloudflare DNS provider: libdns/cloudflare
// with its configuration validated at construction, API errors turned into
// dnsprovider.StatusError (status, Cloudflare error code, Retry-After) so that
// dnsprovider.WithRetry can classify them, idempotent appends, and credentials
// kept out of every error, log and formatted value.
//
// Importing the package registers the provider as "cloudflare":
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/cloudflare"
//
//	p, err := dnsprovider.FromEnv("cloudflare")
//
// or, without the environment:
//
//	p, err := cloudflare.New(cloudflare.Config{APIToken: token})
//
// Environment: CLOUDFLARE_API_TOKEN (required; an API token with
// Zone.DNS:Edit permission) and CLOUDFLARE_ZONE_TOKEN (optional; a token with
// Zone:Read on all zones, used only to look zones up, so that the DNS token
// can be scoped to single zones). Each may instead be given as a file path in
// CLOUDFLARE_API_TOKEN_FILE / CLOUDFLARE_ZONE_TOKEN_FILE.
package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	libdnscf "github.com/libdns/cloudflare"
	"github.com/libdns/libdns"
)

// Environment variables read by FromEnv (each also as NAME_FILE).
const (
	EnvAPIToken  = "CLOUDFLARE_API_TOKEN"
	EnvZoneToken = "CLOUDFLARE_ZONE_TOKEN"
)

func init() {
	dnsprovider.Register("cloudflare", FromEnv)
}

// HTTPClient sends HTTP requests; *http.Client is one.
type HTTPClient interface {
	Do(req *http.Request) (*http.Response, error)
}

// Config configures a Cloudflare provider. Formatting a Config (fmt, slog)
// never shows the tokens.
type Config struct {
	// APIToken is a Cloudflare API token with Zone.DNS:Edit permission on
	// the zones certfleet writes to (not a Global API Key). Required.
	APIToken string

	// ZoneToken is an optional token with Zone:Read permission on all
	// zones. When set, zone lookups use it, so that APIToken can be scoped to
	// single zones.
	ZoneToken string

	// HTTPClient sends the API requests. Nil means an http.Client with a
	// 30 s timeout. Tests route requests to a fake API through it.
	HTTPClient HTTPClient
}

// String describes the Config without its tokens.
func (c Config) String() string {
	return fmt.Sprintf("cloudflare.Config{APIToken: %s, ZoneToken: %s}", redacted(c.APIToken), redacted(c.ZoneToken))
}

// GoString is String: %#v does not show the tokens either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb, so that no verb shows the tokens.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without its tokens.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_token", redacted(c.APIToken)), slog.String("zone_token", redacted(c.ZoneToken)))
}

func redacted(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "[redacted]"
}

// FromEnv builds a provider from CLOUDFLARE_API_TOKEN and
// CLOUDFLARE_ZONE_TOKEN (or their _FILE variants) as getenv returns them; a
// nil getenv reads the process environment.
func FromEnv(getenv func(string) string) (dnsprovider.Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	api, err := dnsprovider.LookupEnv(getenv, EnvAPIToken)
	if err != nil {
		return nil, err
	}
	zone, err := dnsprovider.LookupEnv(getenv, EnvZoneToken)
	if err != nil {
		return nil, err
	}
	if api == "" {
		hint := ""
		for _, other := range []string{"CF_DNS_API_TOKEN", "CLOUDFLARE_DNS_API_TOKEN", "CF_API_TOKEN"} {
			if getenv(other) != "" || getenv(other+"_FILE") != "" {
				hint = fmt.Sprintf(" (%s is set, but certfleet reads %s)", other, EnvAPIToken)
				break
			}
		}
		if hint == "" && (getenv("CLOUDFLARE_API_KEY") != "" || getenv("CF_API_KEY") != "") {
			hint = " (a Global API Key is set, but certfleet needs a scoped API token)"
		}
		return nil, fmt.Errorf("%s is not set%s: create a Cloudflare API token with Zone.DNS:Edit permission and set %s or %s_FILE",
			EnvAPIToken, hint, EnvAPIToken, EnvAPIToken)
	}
	return newProvider(Config{APIToken: api, ZoneToken: zone}, EnvAPIToken, EnvZoneToken)
}

// New returns a Cloudflare provider, after checking cfg: the tokens must be
// set (APIToken) and look like Cloudflare API tokens. No network call is made.
func New(cfg Config) (dnsprovider.Provider, error) {
	return newProvider(cfg, "APIToken", "ZoneToken")
}

// globalKey matches a Cloudflare Global API Key, which certfleet does not use.
var globalKey = regexp.MustCompile(`^[0-9a-f]{37}$`)

// checkToken validates a token without ever showing it.
func checkToken(field, token string) error {
	for _, r := range token {
		if r <= ' ' || r >= 0x7f {
			return fmt.Errorf("%s contains whitespace, a control character or a non-ASCII character (a stray newline or space?): Cloudflare API tokens are printable ASCII", field)
		}
	}
	if globalKey.MatchString(token) {
		return fmt.Errorf("%s looks like a Cloudflare Global API Key: create a scoped API token with Zone.DNS:Edit permission instead", field)
	}
	return nil
}

func newProvider(cfg Config, apiField, zoneField string) (*Provider, error) {
	if cfg.APIToken == "" {
		return nil, fmt.Errorf("%s is empty: create a Cloudflare API token with Zone.DNS:Edit permission", apiField)
	}
	if err := checkToken(apiField, cfg.APIToken); err != nil {
		return nil, err
	}
	if cfg.ZoneToken != "" {
		if err := checkToken(zoneField, cfg.ZoneToken); err != nil {
			return nil, err
		}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Provider{
		cfg: cfg,
		inner: &libdnscf.Provider{
			APIToken:   cfg.APIToken,
			ZoneToken:  cfg.ZoneToken,
			HTTPClient: statusClient{next: client},
		},
	}, nil
}

// Provider is a Cloudflare DNS provider; it implements dnsprovider.Provider,
// libdns.RecordGetter, libdns.RecordSetter and libdns.ZoneLister, and is safe
// for concurrent use. Errors are *dnsprovider.OpError values wrapping a
// *dnsprovider.StatusError for API errors. Formatting a Provider never shows
// its tokens.
type Provider struct {
	cfg   Config
	inner *libdnscf.Provider
}

// ProviderName returns "cloudflare".
func (p *Provider) ProviderName() string { return "cloudflare" }

// String describes the provider without its tokens.
func (p Provider) String() string { return "cloudflare.Provider{" + p.cfg.String() + "}" }

// GoString is String.
func (p Provider) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Provider) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue is how slog shows a Provider: without its tokens.
func (p Provider) LogValue() slog.Value { return p.cfg.LogValue() }

// zoneName returns zone as Cloudflare names zones: lower case, no trailing dot.
func zoneName(zone string) string {
	return strings.ToLower(strings.TrimSuffix(zone, "."))
}

// do runs one operation, turning a panic in libdns/cloudflare (as on a
// malformed API answer) into an error, and naming the operation and zone.
func (p *Provider) do(op, zone string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("libdns/cloudflare failed on an unexpected API answer: %v", v)
		}
		if err != nil {
			err = &dnsprovider.OpError{Provider: "cloudflare", Op: op, Zone: zone, Attempts: 1, Temporary: dnsprovider.IsTransientAPIError(err), Err: explain(err, zone)}
		}
	}()
	return f()
}

// call makes one call into libdns/cloudflare and returns the first failed
// API request's error if the call itself reports none: libdns/cloudflare
// v0.2.2 ignores the error of the lookup that precedes a TXT delete, and
// would report success with the record still there.
func call[T any](ctx context.Context, f func(ctx context.Context) (T, error)) (T, error) {
	rec := &recorder{}
	out, err := f(context.WithValue(ctx, recorderKey{}, rec))
	if err == nil {
		err = rec.failure()
	}
	return out, err
}

var zoneCount = regexp.MustCompile(`^expected 1 zone, got (\d+) for `)

// explain rewords the libdns/cloudflare errors that a user can act on.
func explain(err error, zone string) error {
	if m := zoneCount.FindStringSubmatch(err.Error()); m != nil {
		if m[1] == "0" {
			return fmt.Errorf("zone %q is not in the Cloudflare account, or the token cannot read it (a token scoped to single zones needs %s with Zone:Read): %w", zoneName(zone), EnvZoneToken, err)
		}
		return fmt.Errorf("zone %q matches several Cloudflare zones: %w", zoneName(zone), err)
	}
	return err
}

// isIdentical reports whether err is Cloudflare's "An identical record
// already exists." (code 81058).
func isIdentical(err error) bool {
	var se *dnsprovider.StatusError
	return errors.As(err, &se) && se.Code == "81058"
}

// AppendRecords adds records to the zone. A record identical to one already
// in the zone (name, type and content) counts as added: appends are
// idempotent, so a retry after a lost answer does not fail.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("append", zone, func() error {
		for _, rec := range recs {
			res, err := call(ctx, func(ctx context.Context) ([]libdns.Record, error) {
				return p.inner.AppendRecords(ctx, zoneName(zone), []libdns.Record{rec})
			})
			switch {
			case isIdentical(err):
				out = append(out, rec)
			case err != nil:
				return err
			default:
				out = append(out, res...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRecords deletes the records from the zone that match recs and
// returns those deleted; records not in the zone are ignored.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("delete", zone, func() error {
		for _, rec := range recs {
			res, err := call(ctx, func(ctx context.Context) ([]libdns.Record, error) {
				return p.inner.DeleteRecords(ctx, zoneName(zone), []libdns.Record{rec})
			})
			if err != nil {
				return err
			}
			for _, r := range res {
				// Cloudflare answers a delete with the record id only.
				if r.RR().Type == "" {
					r = rec
				}
				out = append(out, r)
			}
		}
		return nil
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
		out, err = call(ctx, func(ctx context.Context) ([]libdns.Record, error) {
			return p.inner.GetRecords(ctx, zoneName(zone))
		})
		return err
	})
	return out, err
}

// SetRecords sets the records of each (name, type) in recs.
func (p *Provider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var out []libdns.Record
	err := p.do("set", zone, func() error {
		var err error
		out, err = call(ctx, func(ctx context.Context) ([]libdns.Record, error) {
			return p.inner.SetRecords(ctx, zoneName(zone), recs)
		})
		return err
	})
	return out, err
}

// ListZones lists the zones the token can see (the first page of
// Cloudflare's answer, as libdns/cloudflare reads it).
func (p *Provider) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	var out []libdns.Zone
	err := p.do("list", "", func() error {
		var err error
		out, err = call(ctx, p.inner.ListZones)
		return err
	})
	return out, err
}

var (
	_ dnsprovider.Provider = (*Provider)(nil)
	_ libdns.RecordGetter  = (*Provider)(nil)
	_ libdns.RecordSetter  = (*Provider)(nil)
	_ libdns.ZoneLister    = (*Provider)(nil)
	_ fmt.Formatter        = Config{}
	_ slog.LogValuer       = Provider{}
	_ fmt.Formatter        = Provider{}
	_ libdnscf.HTTPClient  = statusClient{}
)
