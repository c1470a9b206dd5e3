package redis

import (
	"crypto/tls"
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
)

// Limits on Config values.
const (
	// MinLockTTL is the shortest LockTTL accepted: a keepalive refreshes a
	// lock three times per TTL, which needs a few round trips of headroom.
	MinLockTTL = time.Second
	// maxPrefixLen bounds Prefix; Redis keys could be longer, people rarely want that.
	maxPrefixLen = 64
)

// Config configures a Storage. Addr is required; every other zero field means
// its documented default.
type Config struct {
	// Addr is the Redis server: "host:port", or a URL
	// redis://[user[:password]@]host[:port][/db][?prefix=P&lock_ttl=D&timeout=D]
	// (rediss:// for TLS). Settings given in both the URL and a field below
	// must agree.
	Addr string

	// Username and Password authenticate to Redis (ACL user or requirepass).
	// The password never appears in errors, logs or String output.
	Username string
	Password string

	// Prefix namespaces every Redis key and pub/sub channel of this storage:
	// clients with the same Prefix share data and locks, clients with
	// different ones never see each other's. 1 to 64 characters from
	// [A-Za-z0-9_.-]. Default DefaultPrefix.
	Prefix string

	// LockTTL is how long a lock outlives its holder's last keepalive: a
	// crashed or stalled holder's lock is free again after at most LockTTL.
	// At least MinLockTTL. Default DefaultLockTTL.
	LockTTL time.Duration

	// Timeout bounds each network round trip (dial, read, write) to Redis.
	// Default DefaultTimeout.
	Timeout time.Duration

	// TLSConfig, when set, makes the client connect with TLS. A rediss:// Addr
	// uses TLS with the system roots when TLSConfig is nil.
	TLSConfig *tls.Config

	// Logger receives keepalive failures, lost locks and subscription
	// resyncs. Default: discard.
	Logger *slog.Logger
}

// String describes c without its password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = " Password:REDACTED"
	}
	return fmt.Sprintf("redis.Config{Addr:%s Username:%q%s Prefix:%q LockTTL:%s Timeout:%s TLS:%t}",
		redactAddr(c.Addr), c.Username, pw, c.Prefix, c.LockTTL, c.Timeout, c.TLSConfig != nil)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// redactAddr returns addr with any URL password replaced.
func redactAddr(addr string) string {
	if !strings.Contains(addr, "://") {
		return addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// settings is a validated Config with defaults applied.
type settings struct {
	addr     string // host:port
	db       int
	username string
	password string
	prefix   string
	lockTTL  time.Duration
	timeout  time.Duration
	tls      *tls.Config
	logger   *slog.Logger
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
		tls:      c.TLSConfig,
		logger:   c.Logger,
	}
	addr := strings.TrimSpace(c.Addr)
	if addr == "" {
		return s, errors.New("redis: Config.Addr is empty: set it to host:port or a redis:// URL")
	}
	if strings.Contains(addr, "://") {
		if err := s.fromURL(addr); err != nil {
			return s, err
		}
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return s, fmt.Errorf("redis: Config.Addr %q is not host:port or a redis:// URL", addr)
		}
		s.addr = addr
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
		return s, fmt.Errorf("redis: LockTTL %s is too short: use at least %s", s.lockTTL, MinLockTTL)
	}
	switch {
	case s.timeout == 0:
		s.timeout = DefaultTimeout
	case s.timeout < 0:
		return s, fmt.Errorf("redis: Timeout %s is negative: leave it zero for %s or set a positive duration", s.timeout, DefaultTimeout)
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// fromURL fills s from a redis:// or rediss:// URL. The URL is never quoted
// in errors: it may hold a password.
func (s *settings) fromURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's errors quote the URL or the offending escape, which may
		// be part of the password: say only where to look.
		return errors.New("redis: Config.Addr is not a valid URL: check its syntax and %-escapes (not shown: it may contain a password)")
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		if s.tls == nil {
			s.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
	default:
		return fmt.Errorf("redis: Config.Addr has scheme %q: use redis:// or rediss://", u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return fmt.Errorf("redis: Config.Addr URL %s has no host: use redis://host:port", u.Redacted())
	}
	if port == "" {
		port = "6379"
	}
	s.addr = net.JoinHostPort(host, port)

	if u.User != nil {
		if err := agree("username", &s.username, u.User.Username(), true); err != nil {
			return err
		}
		if pw, ok := u.User.Password(); ok {
			if err := agree("password", &s.password, pw, false); err != nil {
				return err
			}
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return fmt.Errorf("redis: Config.Addr URL path %q is not a database number: use /0, /1, …", u.Path)
		}
		s.db = db
	}
	q := u.Query()
	for name, vals := range q {
		v := vals[len(vals)-1]
		switch name {
		case "prefix":
			if err := agree("prefix", &s.prefix, v, true); err != nil {
				return err
			}
		case "lock_ttl", "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("redis: URL parameter %s=%q is not a duration like 15s: %w", name, v, err)
			}
			field := &s.lockTTL
			if name == "timeout" {
				field = &s.timeout
			}
			if *field != 0 && *field != d {
				return fmt.Errorf("redis: URL parameter %s=%s disagrees with the Config field (%s): set only one", name, d, *field)
			}
			*field = d
		default:
			return fmt.Errorf("redis: unknown URL parameter %q: known ones are prefix, lock_ttl and timeout", name)
		}
	}
	return nil
}

// agree sets *field to v when *field is empty, and fails when both are set
// and differ. Secret values (show false) are not shown in the error.
func agree(name string, field *string, v string, show bool) error {
	switch {
	case *field == "" || *field == v:
		*field = v
		return nil
	case show:
		return fmt.Errorf("redis: %s %q in the URL disagrees with the Config field (%q): set only one", name, v, *field)
	default:
		return fmt.Errorf("redis: %s in the URL disagrees with the Config field: set only one", name)
	}
}

// checkPrefix accepts 1 to maxPrefixLen characters from [A-Za-z0-9_.-]. The
// restriction keeps ':' (the separator after the prefix) and glob characters
// out, so no prefix's keys can be mistaken for another prefix's.
func checkPrefix(p string) error {
	if len(p) > maxPrefixLen {
		return fmt.Errorf("redis: Prefix %q is longer than %d characters: shorten it", p, maxPrefixLen)
	}
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
		default:
			return fmt.Errorf("redis: Prefix %q contains %q: use only letters, digits, '_', '.' and '-'", p, r)
		}
	}
	return nil
}
