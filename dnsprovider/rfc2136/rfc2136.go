// Package rfc2136 is certfleet's provider for DNS servers that take dynamic
// updates (RFC 2136) signed with a TSIG key (RFC 8945): BIND, Knot,
// PowerDNS, Windows DNS and the like. The configuration is validated at
// construction, a key the server refuses gives an error that says so, every
// exchange has a timeout, and the TSIG secret is kept out of every error, log
// and formatted value.
//
// Importing the package registers the provider as "rfc2136":
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/rfc2136"
//
//	p, err := dnsprovider.FromEnv("rfc2136")
//
// or, without the environment:
//
//	p, err := rfc2136.New(rfc2136.Config{
//		Nameserver: "192.0.2.53:53",
//		TSIGKey:    "certfleet",
//		TSIGSecret: secret, // base64, as in BIND's key file
//	})
//
// Environment (the names lego uses): RFC2136_NAMESERVER (host:port of the
// primary nameserver, required), RFC2136_TSIG_KEY (the key name),
// RFC2136_TSIG_SECRET (its base64 secret; also as a file path in
// RFC2136_TSIG_SECRET_FILE), RFC2136_TSIG_ALGORITHM (default hmac-sha256)
// and RFC2136_DNS_TIMEOUT (per exchange, in seconds or as a Go duration;
// default 10 s).
//
// A BIND zone that certfleet writes to needs the key allowed to update it;
// allowing zone transfers too lets certfleet read the zone back (GetRecords,
// used to check before retrying a write):
//
//	key "certfleet" { algorithm hmac-sha256; secret "…"; };
//	zone "example.com" {
//		type primary; file "example.com.db";
//		update-policy { grant certfleet zonesub TXT; };
//		allow-transfer { key certfleet; };
//	};
//
// The package speaks DNS itself (over miekg/dns) rather than through
// libdns/rfc2136 v1.0.1, which reports a refused key as "dns: bad signature"
// (it returns the TSIG check's error before reading the answer's RCODE and
// TSIG error), signs every update even when no key is configured, and does
// not check its settings before use.
package rfc2136

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certfleet/certfleet/dnsprovider"
)

// Environment variables read by FromEnv. The secret may also be given as a
// file path in RFC2136_TSIG_SECRET_FILE.
const (
	EnvNameserver    = "RFC2136_NAMESERVER"
	EnvTSIGKey       = "RFC2136_TSIG_KEY"
	EnvTSIGSecret    = "RFC2136_TSIG_SECRET"
	EnvTSIGAlgorithm = "RFC2136_TSIG_ALGORITHM"
	EnvTimeout       = "RFC2136_DNS_TIMEOUT"
)

// DefaultAlgorithm is the TSIG algorithm used when none is configured.
const DefaultAlgorithm = "hmac-sha256"

// DefaultTimeout bounds one DNS exchange (connect, send, answer) when
// Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

func init() {
	dnsprovider.Register("rfc2136", FromEnv)
}

// ErrKeyRefused is wrapped by the errors of updates and zone transfers that
// the nameserver refused because of the TSIG key: it does not know the key
// name (BADKEY), the secret or algorithm does not match (BADSIG), or the
// clocks differ by more than the allowed fudge (BADTIME).
var ErrKeyRefused = errors.New("the nameserver refused the TSIG key")

// algorithms maps the accepted algorithm names to miekg/dns's names.
var algorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

const algorithmList = "hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224 or hmac-sha1"

// Config configures an RFC 2136 provider. Formatting a Config (fmt, slog)
// never shows the secret.
type Config struct {
	// Nameserver is the host:port of the nameserver that takes the updates
	// (the zone's primary), such as "192.0.2.53:53" or "ns1.example.com:53".
	// Required; the port too.
	Nameserver string

	// TSIGKey is the name of the TSIG key that signs the updates, as the
	// server knows it ("certfleet" in BIND's key "certfleet" { … }).
	// TSIGKey and TSIGSecret are set together; with neither, the updates
	// are not signed (for servers that allow updates by address only).
	TSIGKey string

	// TSIGSecret is the key's secret, base64-encoded as BIND's key files
	// and tsig-keygen show it.
	TSIGSecret string

	// TSIGAlgorithm is the key's algorithm: hmac-sha256 (the default),
	// hmac-sha384, hmac-sha512, hmac-sha224 or hmac-sha1, with or without a
	// trailing dot, in any case. hmac-md5 is refused: generate a new key
	// (tsig-keygen -a hmac-sha256 certfleet).
	TSIGAlgorithm string

	// Timeout bounds each DNS exchange with the nameserver: connect, send
	// the update and read its answer. Default: 10 s.
	Timeout time.Duration
}

// String describes the Config without its secret.
func (c Config) String() string {
	return fmt.Sprintf("rfc2136.Config{Nameserver: %q, TSIGKey: %q, TSIGSecret: %s, TSIGAlgorithm: %q, Timeout: %s}",
		c.Nameserver, c.TSIGKey, redacted(c.TSIGSecret), c.TSIGAlgorithm, c.Timeout)
}

// GoString is String: %#v does not show the secret either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb, so that no verb shows the secret.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without its secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("nameserver", c.Nameserver), slog.String("tsig_key", c.TSIGKey),
		slog.String("tsig_secret", redacted(c.TSIGSecret)), slog.String("tsig_algorithm", c.TSIGAlgorithm))
}

func redacted(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "[redacted]"
}

// FromEnv builds a provider from the RFC2136_* variables listed in the
// package documentation as getenv returns them; a nil getenv reads the
// process environment. Errors name the variable.
func FromEnv(getenv func(string) string) (dnsprovider.Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	secret, err := dnsprovider.LookupEnv(getenv, EnvTSIGSecret)
	if err != nil {
		return nil, err
	}
	cfg := Config{
		Nameserver:    getenv(EnvNameserver),
		TSIGKey:       getenv(EnvTSIGKey),
		TSIGSecret:    secret,
		TSIGAlgorithm: getenv(EnvTSIGAlgorithm),
	}
	var errs []error
	if v := getenv(EnvTimeout); v != "" {
		d, err := parseTimeout(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvTimeout, v, err))
		}
		cfg.Timeout = d
	}
	if cfg.Nameserver == "" {
		errs = append(errs, fmt.Errorf("%s is not set: set it to the host:port of the zone's primary nameserver, such as 192.0.2.53:53", EnvNameserver))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return newProvider(cfg, envNames)
}

// parseTimeout reads whole seconds (lego's form) or a Go duration.
func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 {
			return 0, errors.New("want a positive number of seconds or a duration such as 10s")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("want a positive number of seconds or a duration such as 10s")
	}
	return d, nil
}

// fieldNames names the settings in errors: Config fields for New, variables
// for FromEnv.
type fieldNames struct{ nameserver, key, secret, algorithm, timeout string }

var (
	structNames = fieldNames{"Nameserver", "TSIGKey", "TSIGSecret", "TSIGAlgorithm", "Timeout"}
	envNames    = fieldNames{EnvNameserver, EnvTSIGKey, EnvTSIGSecret, EnvTSIGAlgorithm, EnvTimeout}
)

// New returns an RFC 2136 provider after checking cfg: the nameserver is a
// host:port, the key name a domain name, the secret base64, the algorithm
// one the provider speaks. No network call is made.
func New(cfg Config) (dnsprovider.Provider, error) {
	return newProvider(cfg, structNames)
}

func newProvider(cfg Config, names fieldNames) (*Provider, error) {
	var errs []error
	if err := checkNameserver(cfg.Nameserver); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", names.nameserver, err))
	}
	alg := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(cfg.TSIGAlgorithm)), ".")
	if alg == "" {
		alg = DefaultAlgorithm
	}
	if strings.HasPrefix(alg, "hmac-md5") {
		errs = append(errs, fmt.Errorf("%s %q: hmac-md5 is broken and not supported: generate a new key, for BIND with tsig-keygen -a hmac-sha256 certfleet", names.algorithm, cfg.TSIGAlgorithm))
	} else if _, ok := algorithms[alg]; !ok {
		errs = append(errs, fmt.Errorf("%s %q is not a TSIG algorithm this provider speaks: use %s", names.algorithm, cfg.TSIGAlgorithm, algorithmList))
	}
	var keyName string
	switch {
	case cfg.TSIGKey == "" && cfg.TSIGSecret != "":
		errs = append(errs, fmt.Errorf("%s is set but %s is not: set the key's name too (the name in the server's key \"…\" { … } clause)", names.secret, names.key))
	case cfg.TSIGKey != "" && cfg.TSIGSecret == "":
		errs = append(errs, fmt.Errorf("%s is set but %s is not: set the key's base64 secret too", names.key, names.secret))
	case cfg.TSIGKey != "":
		keyName = strings.ToLower(dns.Fqdn(cfg.TSIGKey))
		if _, ok := dns.IsDomainName(keyName); !ok || keyName == "." || strings.ContainsAny(cfg.TSIGKey, " \t\r\n\"") {
			errs = append(errs, fmt.Errorf("%s %q is not a key name: use the name in the server's key \"…\" { … } clause, such as certfleet", names.key, cfg.TSIGKey))
		}
		if err := checkSecret(cfg.TSIGSecret); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", names.secret, err))
		}
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s is %s: want 0 (default %s) or more", names.timeout, cfg.Timeout, DefaultTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.TSIGAlgorithm = alg
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	p := &Provider{cfg: cfg, slots: make(chan struct{}, maxInFlight)}
	if keyName != "" {
		secret, _ := base64.StdEncoding.DecodeString(cfg.TSIGSecret)
		p.key = &tsigKey{name: keyName, algorithm: algorithms[alg], secret: secret}
	}
	return p, nil
}

func checkNameserver(v string) error {
	if v == "" {
		return errors.New("the nameserver is required: the host:port of the zone's primary, such as 192.0.2.53:53")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port (the port is required, such as 192.0.2.53:53 or [2001:db8::53]:53)", v)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", v)
	}
	if strings.ContainsAny(host, " /\t") {
		return fmt.Errorf("%q: the host must be an IP address or a host name", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535", v)
	}
	return nil
}

// checkSecret validates a base64 TSIG secret without ever showing it.
func checkSecret(secret string) error {
	if strings.Contains(secret, "secret") && strings.Contains(secret, "{") {
		return errors.New("looks like a whole BIND key clause: give only the base64 secret between its quotes")
	}
	b, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return errors.New("is not base64 (a TSIG secret is base64, as tsig-keygen prints it)")
	}
	if len(b) == 0 {
		return errors.New("decodes to no bytes")
	}
	return nil
}

// Provider is an RFC 2136 DNS provider; it implements dnsprovider.Provider,
// libdns.RecordGetter (by zone transfer) and libdns.RecordSetter, and is safe
// for concurrent use. Each call is one signed DNS UPDATE (or AXFR) over TCP:
// all its records change together or not at all. Errors are
// *dnsprovider.OpError values; those of the server carry a
// *dnsprovider.StatusError with the RCODE (and TSIG error) as Code, and wrap
// ErrKeyRefused when the key was refused. Formatting a Provider never shows
// its secret.
type Provider struct {
	cfg   Config
	key   *tsigKey      // nil: updates are not signed
	slots chan struct{} // one per exchange in flight
}

// maxInFlight bounds the exchanges one Provider has open with its
// nameserver. Each is a new TCP connection, and BIND accepts only 10 pending
// connections by default (tcp-listen-queue): more at once, as when a fleet
// member obtains 20 names together, and the kernel drops connection
// requests, each costing a one-second SYN retransmission.
const maxInFlight = 8

// ProviderName returns "rfc2136".
func (p *Provider) ProviderName() string { return "rfc2136" }

// String describes the provider without its secret.
func (p Provider) String() string { return "rfc2136.Provider{" + p.cfg.String() + "}" }

// GoString is String.
func (p Provider) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Provider) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue is how slog shows a Provider: without its secret.
func (p Provider) LogValue() slog.Value { return p.cfg.LogValue() }
