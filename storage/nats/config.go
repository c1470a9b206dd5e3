package nats

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero fields of Config.
const (
	// DefaultBucket is the Bucket of a Config that sets none.
	DefaultBucket = "certfleet"
	// DefaultLockTTL is the LockTTL of a Config that sets none.
	DefaultLockTTL = 15 * time.Second
	// DefaultTimeout is the Timeout of a Config that sets none.
	DefaultTimeout = 5 * time.Second
)

// MinLockTTL is the shortest LockTTL accepted: a keepalive refreshes a lock
// three times per TTL, which needs a few round trips of headroom.
const MinLockTTL = time.Second

// Config configures a Storage. URL is required; every other zero field means
// its documented default.
type Config struct {
	// URL is the NATS server (or a comma-separated list of servers):
	// nats://[user[:password]@]host[:port] (tls:// for TLS). A path, if
	// any, is the Bucket, and the query may set lock_ttl, timeout and
	// replicas (see FromURL).
	URL string

	// Username, Password and Token authenticate to NATS. Neither the
	// password nor the token appears in errors, logs or String output.
	Username string
	Password string
	Token    string

	// Bucket is the JetStream KV bucket holding this storage, created on
	// first use: clients with the same Bucket share data and locks. 1 to 64
	// characters from [A-Za-z0-9_-]. Default DefaultBucket.
	Bucket string

	// Replicas is the bucket's replication factor when New creates it (1 to
	// 5, at most the cluster's size). Default 1. An existing bucket keeps
	// its own.
	Replicas int

	// LockTTL is how long a lock outlives its holder's last keepalive: a
	// crashed or stalled holder's lock is taken over once its lease has
	// not been renewed for LockTTL. At least MinLockTTL. Default
	// DefaultLockTTL.
	LockTTL time.Duration

	// Timeout bounds each request to NATS (and the connection). Default
	// DefaultTimeout.
	Timeout time.Duration

	// TLSConfig, when set, makes the client connect with TLS.
	TLSConfig *tls.Config

	// Logger receives keepalive failures, lost locks and change feed
	// restarts. Default: discard.
	Logger *slog.Logger
}

// String describes c without its secrets.
func (c Config) String() string {
	secret := ""
	if c.Password != "" {
		secret += " Password:REDACTED"
	}
	if c.Token != "" {
		secret += " Token:REDACTED"
	}
	return fmt.Sprintf("nats.Config{URL:%s Username:%q%s Bucket:%q Replicas:%d LockTTL:%s Timeout:%s TLS:%t}",
		redactURL(c.URL), c.Username, secret, c.Bucket, c.Replicas, c.LockTTL, c.Timeout, c.TLSConfig != nil)
}

// GoString is String, so that %#v does not print secrets either.
func (c Config) GoString() string { return c.String() }

// Format writes String for every verb.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is String, for slog.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON writes String as a JSON string, so that a Config inside a
// value marshalled to JSON (as slog's JSON handler does with nested
// structs) shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// redactURL returns the server list with passwords replaced.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "(unparseable URL)"
		}
	}
	return strings.Join(parts, ",")
}

// validate checks c and applies defaults.
func (c Config) validate() (Config, error) {
	if strings.TrimSpace(c.URL) == "" {
		return c, errors.New("nats: Config.URL is empty: set it to the server, such as nats://127.0.0.1:4222")
	}
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if len(c.Bucket) > 64 || strings.IndexFunc(c.Bucket, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) >= 0 {
		return c, fmt.Errorf("nats: Bucket %q is not a bucket name: use 1 to 64 letters, digits, '_' or '-'", c.Bucket)
	}
	switch {
	case c.Replicas == 0:
		c.Replicas = 1
	case c.Replicas < 0 || c.Replicas > 5:
		return c, fmt.Errorf("nats: Replicas %d is out of range: use 1 to 5", c.Replicas)
	}
	switch {
	case c.LockTTL == 0:
		c.LockTTL = DefaultLockTTL
	case c.LockTTL < MinLockTTL:
		return c, fmt.Errorf("nats: LockTTL %s is too short: use at least %s", c.LockTTL, MinLockTTL)
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0:
		return c, fmt.Errorf("nats: Timeout %s is negative: leave it zero for %s or set a positive duration", c.Timeout, DefaultTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// FromURL returns the Config that a nats:// or tls:// URL describes:
//
//	nats://[user[:password]@]host[:port][/bucket][?lock_ttl=D&timeout=D&replicas=N]
//
// The path (without its leading '/') is the Bucket.
func FromURL(u *url.URL) (Config, error) {
	var c Config
	switch u.Scheme {
	case "nats", "tls":
	default:
		return c, fmt.Errorf("nats: URL scheme %q: use nats:// or tls://", u.Scheme)
	}
	if u.Host == "" {
		return c, fmt.Errorf("nats: URL %s has no host: use nats://host:4222/bucket", u.Redacted())
	}
	c.Bucket = strings.Trim(u.Path, "/")
	for name, vals := range u.Query() {
		v := vals[len(vals)-1]
		switch name {
		case "lock_ttl", "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("nats: URL parameter %s=%q is not a duration like 15s: %w", name, v, err)
			}
			if name == "lock_ttl" {
				c.LockTTL = d
			} else {
				c.Timeout = d
			}
		case "replicas":
			n, err := strconv.Atoi(v)
			if err != nil {
				return c, fmt.Errorf("nats: URL parameter replicas=%q is not a number", v)
			}
			c.Replicas = n
		default:
			return c, fmt.Errorf("nats: unknown URL parameter %q: known ones are lock_ttl, timeout and replicas", name)
		}
	}
	server := &url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}
	c.URL = server.String()
	return c, nil
}
