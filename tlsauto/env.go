package tlsauto

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/encrypt"
)

// Environment variables read by NewFromEnv and Listen. Any of them may be
// given as a file path in NAME_FILE instead (container secrets).
const (
	EnvDomains            = "CERTFLEET_DOMAINS"             // names, comma-separated, when none are passed
	EnvEmail              = "CERTFLEET_EMAIL"               // Config.Email
	EnvCA                 = "CERTFLEET_CA"                  // Config.CA: a URL, "letsencrypt" or "letsencrypt-staging"; comma-separated for Config.CAs
	EnvCARoots            = "CERTFLEET_CA_ROOTS"            // path of a PEM file: Config.CARoots
	EnvDNSProvider        = "CERTFLEET_DNS_PROVIDER"        // provider name, such as cloudflare or route53
	EnvDNSRoutes          = "CERTFLEET_DNS_ROUTES"          // one provider per zone: example.com=cloudflare,example.org=route53:ORG_
	EnvStorage            = "CERTFLEET_STORAGE"             // a directory or a storage URL (storage.Open)
	EnvStorageKeys        = encrypt.EnvKeys                 // keys that encrypt storage at rest (storage/encrypt)
	EnvResolvers          = "CERTFLEET_RESOLVERS"           // Config.Resolvers, comma-separated
	EnvPropagationTimeout = "CERTFLEET_PROPAGATION_TIMEOUT" // Config.PropagationTimeout, such as 2m
	EnvPropagationCheck   = "CERTFLEET_PROPAGATION_CHECK"   // Config.PropagationCheck: auto, all, any, resolvers or skip
	EnvPropagationDelay   = "CERTFLEET_PROPAGATION_DELAY"   // Config.PropagationDelay, such as 5s
	EnvDNSPort            = "CERTFLEET_DNS_PORT"            // Config.DNSPort
	EnvKeyType            = "CERTFLEET_KEY_TYPE"            // Config.KeyType
	EnvProfile            = "CERTFLEET_PROFILE"             // Config.Profile
	EnvEABKeyID           = "CERTFLEET_EAB_KEY_ID"          // Config.EAB.KeyID
	EnvEABMACKey          = "CERTFLEET_EAB_MAC_KEY"         // Config.EAB.MACKey
	EnvRenewalCheck       = "CERTFLEET_RENEWAL_CHECK_INTERVAL"
	EnvStartTimeout       = "CERTFLEET_START_TIMEOUT" // Listen: how long to wait for certificates (default 5m)
)

// NewFromEnv returns a Manager for domains (or, when none are given, the
// names in CERTFLEET_DOMAINS) with every other setting read from CERTFLEET_*
// variables and the DNS provider's own variables. The README lists them all.
// Opening the storage is bounded by CERTFLEET_START_TIMEOUT (default 5
// minutes), so that an unreachable database does not hang the caller.
// Storage it opens is closed by the Manager's Close.
func NewFromEnv(domains ...string) (*Manager, error) {
	timeout, err := startTimeout(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return newFromEnv(ctx, os.Getenv, domains)
}

// newFromEnv is NewFromEnv opening storage within ctx.
func newFromEnv(ctx context.Context, env func(string) string, domains []string) (*Manager, error) {
	cfg, closer, err := configFromEnv(ctx, env, domains)
	if err != nil {
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	m, err := New(cfg)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, envError(err, len(domains) == 0)
	}
	m.closer = closer
	return m, nil
}

// fieldEnv maps the Config fields read from the environment to their
// variables, so that a setting refused by New is named as the user set it.
var fieldEnv = map[string]string{
	"Email": EnvEmail, "CA": EnvCA, "CAs": EnvCA, "CARoots": EnvCARoots, "Resolvers": EnvResolvers,
	"PropagationCheck": EnvPropagationCheck, "PropagationDelay": EnvPropagationDelay,
	"PropagationTimeout": EnvPropagationTimeout, "DNSPort": EnvDNSPort, "KeyType": EnvKeyType,
	"Profile": EnvProfile, "EAB": EnvEABKeyID + "/" + EnvEABMACKey, "RenewalCheckInterval": EnvRenewalCheck,
}

// envError rewrites a *ConfigError from New to name the environment
// variable the field came from (CERTFLEET_DOMAINS only when the names came
// from it).
func envError(err error, domainsFromEnv bool) error {
	var ce *ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	field, _, _ := strings.Cut(ce.Field, "[")
	name := fieldEnv[field]
	if field == "Domains" && domainsFromEnv {
		name = EnvDomains
	}
	if name == "" {
		return err
	}
	return fmt.Errorf("tlsauto: %s: %w", name, ce.Err)
}

// configFromEnv reads a Config from env, opening storage within ctx. The
// returned closer, if not nil, releases the storage it opened.
func configFromEnv(ctx context.Context, env func(string) string, domains []string) (Config, io.Closer, error) {
	var cfg Config
	var errs []error
	get := func(name string) string {
		v, err := secretenv.Lookup(env, name)
		if err != nil {
			errs = append(errs, err)
		}
		return strings.TrimSpace(v)
	}
	cfg.Domains = domains
	if len(domains) == 0 {
		cfg.Domains = splitList(get(EnvDomains))
	}
	cfg.Email = get(EnvEmail)
	cas := splitList(get(EnvCA))
	if len(cas) == 1 {
		cfg.CA = caURL(cas[0])
	}
	if path := get(EnvCARoots); path != "" {
		pool, err := loadRoots(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvCARoots, err))
		}
		cfg.CARoots = pool
	}
	cfg.Resolvers = splitList(get(EnvResolvers))
	cfg.PropagationTimeout = getDuration(get, EnvPropagationTimeout, &errs)
	cfg.PropagationDelay = getDuration(get, EnvPropagationDelay, &errs)
	if v := get(EnvPropagationCheck); v != "" {
		p, err := dns01.ParsePropagation(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvPropagationCheck, err))
		}
		cfg.PropagationCheck = p
	}
	if v := get(EnvDNSPort); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			errs = append(errs, fmt.Errorf("%s: %q is not a port number (1 to 65535)", EnvDNSPort, v))
		}
		cfg.DNSPort = port
	}
	cfg.RenewalCheckInterval = getDuration(get, EnvRenewalCheck, &errs)
	if kt := get(EnvKeyType); kt != "" {
		k, err := ParseKeyType(kt)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvKeyType, err))
		}
		cfg.KeyType = k
	}
	cfg.Profile = get(EnvProfile)
	if kid, mac := get(EnvEABKeyID), get(EnvEABMACKey); kid != "" || mac != "" {
		cfg.EAB = &EAB{KeyID: kid, MACKey: mac}
	}
	if len(cas) > 1 {
		// Several CAs, in order: the roots and profile apply to each; the
		// EAB of the second and later CAs is in CERTFLEET_EAB_*_<n>.
		for i, u := range cas {
			ca := CA{URL: caURL(u), Roots: cfg.CARoots, Profile: cfg.Profile, EAB: cfg.EAB}
			if i > 0 {
				ca.EAB = nil
				n := "_" + strconv.Itoa(i+1)
				if kid, mac := get(EnvEABKeyID+n), get(EnvEABMACKey+n); kid != "" || mac != "" {
					ca.EAB = &EAB{KeyID: kid, MACKey: mac}
				}
			}
			cfg.CAs = append(cfg.CAs, ca)
		}
		cfg.CARoots, cfg.Profile, cfg.EAB = nil, "", nil
	}
	// CERTFLEET_DNS_ROUTES names a provider per zone, CERTFLEET_DNS_PROVIDER
	// one for all: one of them, not both.
	switch name, routes := get(EnvDNSProvider), get(EnvDNSRoutes); {
	case name != "" && routes != "":
		errs = append(errs, fmt.Errorf("%s and %s are both set: set %s for one provider, or %s for one per zone", EnvDNSProvider, EnvDNSRoutes, EnvDNSProvider, EnvDNSRoutes))
	case routes != "":
		p, err := dnsprovider.RoutesFromEnv(routes, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvDNSRoutes, err))
		}
		cfg.DNS = p
	case name != "":
		p, err := dnsprovider.FromGetenv(name, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w", EnvDNSProvider, name, err))
		}
		cfg.DNS = p
	default:
		errs = append(errs, fmt.Errorf("%s: not set: name the DNS provider that hosts your zones (cloudflare, route53), or set %s to one provider per zone", EnvDNSProvider, EnvDNSRoutes))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, nil, err
	}
	s, closer, err := storageFromEnv(ctx, get, env)
	cfg.Storage = s
	return cfg, closer, err
}

// storageFromEnv opens the storage of CERTFLEET_STORAGE within ctx,
// encrypted when CERTFLEET_STORAGE_KEYS is set; nil when neither is set.
// The returned closer, if not nil, releases what it opened.
func storageFromEnv(ctx context.Context, get, env func(string) string) (certmagic.Storage, io.Closer, error) {
	var st certmagic.Storage
	var closer io.Closer
	if u := get(EnvStorage); u != "" {
		s, err := storage.Open(ctx, u)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", EnvStorage, err)
		}
		st = s
		closer, _ = s.(io.Closer)
	}
	keys, err := encrypt.KeysFromEnv(env)
	switch {
	case err != nil:
		if closer != nil {
			closer.Close()
		}
		return nil, nil, err
	case len(keys) > 0:
		if st == nil {
			s, c, err := defaultStorage()
			if err != nil {
				return nil, nil, err
			}
			st, closer = s, c
		}
		if st, err = encrypt.New(encrypt.Config{Storage: st, Keys: keys}); err != nil {
			if closer != nil {
				closer.Close()
			}
			return nil, nil, err
		}
	}
	return st, closer, nil
}

// defaultStartTimeout is CERTFLEET_START_TIMEOUT's default.
const defaultStartTimeout = 5 * time.Minute

// startTimeout reads CERTFLEET_START_TIMEOUT.
func startTimeout(env func(string) string) (time.Duration, error) {
	v, err := secretenv.Lookup(env, EnvStartTimeout)
	if err != nil {
		return 0, err
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return defaultStartTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration such as 5m", EnvStartTimeout, v)
	}
	return d, nil
}

// caURL reads one CA of CERTFLEET_CA: a URL, or a well-known name.
func caURL(ca string) string {
	switch strings.ToLower(ca) {
	case "letsencrypt":
		return LetsEncrypt
	case "letsencrypt-staging":
		return LetsEncryptStaging
	}
	return ca
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

func getDuration(get func(string) string, name string, errs *[]error) time.Duration {
	v := get(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %q is not a duration such as 90s or 2m", name, v))
	}
	return d
}

func loadRoots(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Listen is the one-liner: it listens on addr (":443") and returns a TLS
// listener serving certificates for domains, obtained and renewed over
// DNS-01 with settings from the environment (see NewFromEnv). It returns
// once every domain has a certificate, or fails after CERTFLEET_START_TIMEOUT
// (default 5 minutes), which bounds opening the storage too. Like Start, it
// keeps every name under management afterwards: renewals, and retries of a
// name whose renewal fails, go on in the background. Closing the listener
// stops the Manager behind it.
func Listen(addr string, domains ...string) (net.Listener, error) {
	return listen(os.Getenv, addr, domains)
}

func listen(env func(string) string, addr string, domains []string) (net.Listener, error) {
	timeout, err := startTimeout(env)
	if err != nil {
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := newFromEnv(ctx, env, domains)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("tlsauto: %w", err)
	}
	if err := m.Start(ctx); err != nil {
		ln.Close()
		m.Close()
		return nil, err
	}
	return &listener{Listener: tls.NewListener(ln, m.TLSConfig()), m: m}, nil
}

// listener is a TLS listener that owns its Manager.
type listener struct {
	net.Listener
	m *Manager
}

func (l *listener) Close() error {
	return errors.Join(l.Listener.Close(), l.m.Close())
}
