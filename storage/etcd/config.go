package etcd

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero fields of Config.
const (
	// DefaultPrefix is the Prefix of a Config that sets none.
	DefaultPrefix = "certfleet"
	// DefaultLockTTL is the LockTTL of a Config that sets none.
	DefaultLockTTL = 15 * time.Second
	// DefaultTimeout is the Timeout of a Config that sets none.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxRequestBytes is etcd's own default request limit
	// (--max-request-bytes), 1.5 MiB.
	DefaultMaxRequestBytes = 1536 << 10
)

// Limits on Config values.
const (
	// MinLockTTL is the shortest LockTTL accepted. etcd grants leases in
	// whole seconds and refuses TTLs shorter than about 1.5 election
	// timeouts (1.5 s with its default settings), and the keepalive
	// refreshes a lease three times per TTL.
	MinLockTTL = 2 * time.Second
	// requestOverhead is what a Store request adds to the key and value:
	// the header of the stored value and the protobuf framing of the request.
	requestOverhead = 512
)

// Config configures a Storage. Endpoints is required; every other zero field
// means its documented default.
type Config struct {
	// Endpoints are the etcd members' client URLs ("http://10.0.0.1:2379",
	// "https://…") or host:port pairs. The client spreads requests over them
	// and moves to another when one fails.
	Endpoints []string

	// Username and Password authenticate to etcd when its auth is enabled.
	// The password never appears in errors, logs or String output.
	Username string
	Password string

	// Prefix namespaces every etcd key of this storage: clients with the
	// same Prefix share data and locks, clients with different ones never
	// see each other's. One or more '/'-separated segments of [A-Za-z0-9_.-],
	// each starting with a letter or digit, at most 128 characters in all.
	// Default DefaultPrefix.
	Prefix string

	// LockTTL is the TTL of the lease that holds each lock: a crashed or
	// partitioned holder's lock is free again at most LockTTL after its
	// last keepalive. Whole seconds (rounded up); at least MinLockTTL.
	// Default DefaultLockTTL.
	LockTTL time.Duration

	// Timeout bounds each request to etcd (and the initial connection).
	// Default DefaultTimeout.
	Timeout time.Duration

	// MaxRequestBytes is the etcd servers' request limit, their
	// --max-request-bytes setting: Store refuses values that would not fit
	// in one request (an error naming this limit) instead of sending them.
	// Default DefaultMaxRequestBytes, etcd's own default.
	MaxRequestBytes int

	// TLSConfig, when set, makes the client connect with TLS (client
	// certificates included). https:// endpoints use TLS with the system
	// roots when TLSConfig is nil.
	TLSConfig *tls.Config

	// Logger receives keepalive failures, lost locks and change feed
	// restarts. Default: discard.
	Logger *slog.Logger
}

// String describes c without its password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = " Password:REDACTED"
	}
	return fmt.Sprintf("etcd.Config{Endpoints:%v Username:%q%s Prefix:%q LockTTL:%s Timeout:%s MaxRequestBytes:%d TLS:%t}",
		c.Endpoints, c.Username, pw, c.Prefix, c.LockTTL, c.Timeout, c.MaxRequestBytes, c.TLSConfig != nil)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// Format writes String for every verb.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is String, for slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON writes String as a JSON string, so that a Config inside a
// value marshalled to JSON (as slog's JSON handler does with nested
// structs) shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// settings is a validated Config with defaults applied.
type settings struct {
	endpoints []string // URLs
	username  string
	password  string
	prefix    string
	lockTTL   time.Duration
	timeout   time.Duration
	maxReq    int
	tls       *tls.Config
	logger    *slog.Logger
}

// validate checks c and applies defaults. Errors name the field and the fix,
// and never contain the password.
func (c Config) validate() (settings, error) {
	s := settings{
		username: c.Username,
		password: c.Password,
		prefix:   c.Prefix,
		lockTTL:  c.LockTTL,
		timeout:  c.Timeout,
		maxReq:   c.MaxRequestBytes,
		tls:      c.TLSConfig,
		logger:   c.Logger,
	}
	if len(c.Endpoints) == 0 {
		return s, errors.New("etcd: Config.Endpoints is empty: list the members' client URLs, such as http://127.0.0.1:2379")
	}
	for _, ep := range c.Endpoints {
		u, err := endpointURL(ep)
		if err != nil {
			return s, err
		}
		if u.Scheme == "https" && s.tls == nil {
			s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s.endpoints = append(s.endpoints, u.String())
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if err := checkPrefix(s.prefix); err != nil {
		return s, err
	}
	switch {
	case s.lockTTL == 0:
		s.lockTTL = DefaultLockTTL
	case s.lockTTL < MinLockTTL:
		return s, fmt.Errorf("etcd: LockTTL %s is too short: use at least %s", s.lockTTL, MinLockTTL)
	}
	s.lockTTL = s.lockTTL.Round(time.Second)
	if s.lockTTL < c.LockTTL {
		s.lockTTL += time.Second
	}
	switch {
	case s.timeout == 0:
		s.timeout = DefaultTimeout
	case s.timeout < 0:
		return s, fmt.Errorf("etcd: Timeout %s is negative: leave it zero for %s or set a positive duration", s.timeout, DefaultTimeout)
	}
	switch {
	case s.maxReq == 0:
		s.maxReq = DefaultMaxRequestBytes
	case s.maxReq < 4*requestOverhead:
		return s, fmt.Errorf("etcd: MaxRequestBytes %d is too small: set it to the servers' --max-request-bytes (default %d)", s.maxReq, DefaultMaxRequestBytes)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// endpointURL parses one endpoint: a URL with scheme http or https, or
// host:port (http).
func endpointURL(ep string) (*url.URL, error) {
	ep = strings.TrimSpace(ep)
	if !strings.Contains(ep, "://") {
		host, port, err := net.SplitHostPort(ep)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("etcd: endpoint %q is not host:port or an http(s):// URL", ep)
		}
		return &url.URL{Scheme: "http", Host: ep}, nil
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("etcd: endpoint %q is not a URL like http://host:2379 (no user, no path)", redact(ep))
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// redact removes a user:password part from a URL-like string.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}

// maxPrefixLen bounds Prefix.
const maxPrefixLen = 128

// checkPrefix accepts '/'-separated segments of [A-Za-z0-9_.-] starting with
// a letter or digit. Keys of the storage are Prefix + "/_v/…" and
// Prefix + "/_l/…": since no segment starts with '_', one prefix's keys
// never fall under another prefix, even a longer one ("a" and "a/b").
func checkPrefix(p string) error {
	if len(p) > maxPrefixLen {
		return fmt.Errorf("etcd: Prefix %q is longer than %d characters: shorten it", p, maxPrefixLen)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" {
			return fmt.Errorf("etcd: Prefix %q has an empty segment: remove leading, trailing or doubled '/'", p)
		}
		if c := seg[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("etcd: Prefix %q has a segment starting with %q: start each segment with a letter or digit", p, c)
		}
		for _, r := range seg {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			default:
				return fmt.Errorf("etcd: Prefix %q contains %q: use only letters, digits, '_', '.', '-' and '/' between segments", p, r)
			}
		}
	}
	return nil
}

// FromURL returns the Config that an etcd:// or etcds:// URL describes:
//
//	etcd://[user[:password]@]host[:port][,host[:port]…][/prefix][?lock_ttl=D&timeout=D&max_request_bytes=N]
//
// etcds:// connects with TLS and the system roots. The port defaults to 2379;
// the path (without its leading '/') is the Prefix.
func FromURL(u *url.URL) (Config, error) {
	var c Config
	scheme := "http"
	switch u.Scheme {
	case "etcd":
	case "etcds":
		scheme = "https"
	default:
		return c, fmt.Errorf("etcd: URL scheme %q: use etcd:// or etcds://", u.Scheme)
	}
	if u.Host == "" {
		return c, fmt.Errorf("etcd: URL %s has no host: use etcd://host:2379/prefix", u.Redacted())
	}
	for h := range strings.SplitSeq(u.Host, ",") {
		if h == "" {
			return c, fmt.Errorf("etcd: URL %s has an empty host in its list: separate hosts with single commas", u.Redacted())
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "2379")
		}
		c.Endpoints = append(c.Endpoints, scheme+"://"+h)
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	c.Prefix = strings.Trim(u.Path, "/")
	for name, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch name {
		case "lock_ttl", "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("etcd: URL parameter %s=%q is not a duration like 15s: %w", name, v, err)
			}
			if name == "lock_ttl" {
				c.LockTTL = d
			} else {
				c.Timeout = d
			}
		case "max_request_bytes":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("etcd: URL parameter max_request_bytes=%q is not a positive number of bytes", v)
			}
			c.MaxRequestBytes = n
		default:
			return c, fmt.Errorf("etcd: unknown URL parameter %q: known ones are lock_ttl, timeout and max_request_bytes", name)
		}
	}
	return c, nil
}
