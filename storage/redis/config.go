package redis

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
	// Addr is where Redis is:
	//   - one server: "host:port", or a URL
	//     redis://[user[:password]@]host[:port][/db][?prefix=P&lock_ttl=D&timeout=D]
	//     (rediss:// for TLS);
	//   - Redis Sentinel: the sentinels, "host:port,host:port" with
	//     MasterName set, or a URL
	//     redis+sentinel://[user[:password]@]host[:port],host[:port]/mastername[/db][?…]
	//     (default port 26379; rediss+sentinel:// for TLS);
	//   - Redis Cluster: some of its nodes, "host:port,host:port" with
	//     Cluster set, or a URL
	//     redis+cluster://[user[:password]@]host[:port],host[:port][?…]
	//     (rediss+cluster:// for TLS).
	// The URL's user and password are those of the Redis servers (not the
	// sentinels: see SentinelPassword). Settings given in both the URL and a
	// field below must agree.
	Addr string

	// MasterName, when set, makes Addr a list of Redis Sentinels, which are
	// asked where the primary called MasterName is; the Storage follows
	// failovers.
	MasterName string

	// Cluster makes Addr a list of Redis Cluster nodes (any of them; the
	// client discovers the rest).
	Cluster bool

	// Username and Password authenticate to Redis (ACL user or requirepass).
	// The password never appears in errors, logs or String output.
	Username string
	Password string

	// SentinelPassword authenticates to the sentinels (their requirepass),
	// when they need one. Never printed either.
	SentinelPassword string

	// Prefix namespaces every Redis key and pub/sub channel of this storage:
	// clients with the same Prefix share data and locks, clients with
	// different ones never see each other's. 1 to 64 characters from
	// [A-Za-z0-9_.-]. Default DefaultPrefix.
	Prefix string

	// LockTTL is how long a lock outlives its holder's last keepalive: a
	// crashed or stalled holder's lock is free again after at most LockTTL.
	// At least MinLockTTL. Default DefaultLockTTL.
	LockTTL time.Duration

	// MinReplicas is how many replicas must have a write before it is
	// acknowledged (Redis WAIT after each write). Redis replicates
	// asynchronously: a failover promotes a replica that may lack the last
	// writes, and a lock acquired or extended in them. With Sentinel, set
	// MinReplicas to 1 or more so that a failover loses no acknowledged write
	// and no lock is held twice; writes then fail while fewer replicas are
	// connected. Not supported with Cluster. Default 0: no waiting.
	MinReplicas int

	// Timeout bounds each network round trip (dial, read, write) to Redis.
	// Default DefaultTimeout.
	Timeout time.Duration

	// TLSConfig, when set, makes the client connect with TLS. A rediss:// Addr
	// uses TLS with the system roots when TLSConfig is nil.
	TLSConfig *tls.Config

	// Logger receives keepalive failures, lost locks and subscription
	// resyncs, and, at debug level, what go-redis itself reports (see New).
	// Default: discard.
	Logger *slog.Logger
}

// Deployment modes, from Config.MasterName and Config.Cluster or the URL
// scheme.
const (
	modeSingle   = "single"
	modeSentinel = "sentinel"
	modeCluster  = "cluster"
)

// String describes c without its password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = " Password:REDACTED"
	}
	if c.SentinelPassword != "" {
		pw += " SentinelPassword:REDACTED"
	}
	return fmt.Sprintf("redis.Config{Addr:%s MasterName:%q Cluster:%t Username:%q%s Prefix:%q LockTTL:%s Timeout:%s TLS:%t}",
		redactAddr(c.Addr), c.MasterName, c.Cluster, c.Username, pw, c.Prefix, c.LockTTL, c.Timeout, c.TLSConfig != nil)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without its passwords.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", redactAddr(c.Addr)), slog.String("master_name", c.MasterName),
		slog.Bool("cluster", c.Cluster), slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""), slog.Bool("sentinel_password_set", c.SentinelPassword != ""),
		slog.String("prefix", c.Prefix))
}

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
	mode             string   // modeSingle, modeSentinel or modeCluster
	addrs            []string // host:port of the server, the sentinels or the cluster nodes
	master           string   // modeSentinel: the primary's name
	db               int
	username         string
	password         string
	sentinelPassword string
	prefix           string
	lockTTL          time.Duration
	timeout          time.Duration
	minReplicas      int
	tls              *tls.Config
	logger           *slog.Logger
}

// validate checks c and applies defaults. Errors name the field and the fix,
// and never contain the password.
func (c Config) validate() (settings, error) {
	s := settings{
		master:           c.MasterName,
		username:         c.Username,
		password:         c.Password,
		sentinelPassword: c.SentinelPassword,
		prefix:           c.Prefix,
		lockTTL:          c.LockTTL,
		timeout:          c.Timeout,
		minReplicas:      c.MinReplicas,
		tls:              c.TLSConfig,
		logger:           c.Logger,
	}
	if c.MasterName != "" && c.Cluster {
		return s, errors.New("redis: Config.MasterName and Config.Cluster are both set: Sentinel and Cluster are different deployments, set one")
	}
	switch {
	case c.MasterName != "":
		s.mode = modeSentinel
	case c.Cluster:
		s.mode = modeCluster
	default:
		s.mode = modeSingle
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
		addrs, err := splitAddrs(addr, "")
		if err != nil {
			return s, fmt.Errorf("redis: Config.Addr %q: %w", addr, err)
		}
		s.addrs = addrs
	}
	if s.mode == modeSingle && len(s.addrs) > 1 {
		return s, errors.New("redis: Config.Addr lists several servers: set MasterName (they are sentinels) or Cluster (they are cluster nodes), or use a redis+sentinel:// or redis+cluster:// URL")
	}
	switch {
	case s.minReplicas < 0:
		return s, fmt.Errorf("redis: MinReplicas %d is negative: use 0 (no waiting) or the number of replicas a write must reach", s.minReplicas)
	case s.minReplicas > 0 && s.mode == modeCluster:
		return s, errors.New("redis: MinReplicas is not supported with Redis Cluster: leave it 0")
	}
	if s.mode == modeCluster && s.db != 0 {
		return s, fmt.Errorf("redis: database %d requested, but Redis Cluster has only database 0: remove it", s.db)
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

// URL schemes and the mode and TLS use each stands for.
var schemes = map[string]struct {
	mode string
	tls  bool
}{
	"redis":           {modeSingle, false},
	"rediss":          {modeSingle, true},
	"redis+sentinel":  {modeSentinel, false},
	"rediss+sentinel": {modeSentinel, true},
	"redis+cluster":   {modeCluster, false},
	"rediss+cluster":  {modeCluster, true},
}

// fromURL fills s from a redis URL (see Config.Addr). The URL is never
// quoted in errors: it may hold a password.
func (s *settings) fromURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's errors quote the URL or the offending escape, which may
		// be part of the password: say only where to look.
		return errors.New("redis: Config.Addr is not a valid URL: check its syntax and %-escapes (not shown: it may contain a password)")
	}
	sch, ok := schemes[u.Scheme]
	if !ok {
		return fmt.Errorf("redis: Config.Addr has scheme %q: use redis:// or rediss:// (one server), redis+sentinel:// or redis+cluster://", u.Scheme)
	}
	switch {
	case s.mode == modeSingle:
		s.mode = sch.mode
	case s.mode != sch.mode:
		return fmt.Errorf("redis: Config.Addr is a %s:// URL, but Config.MasterName or Config.Cluster asks for %s: set only one", u.Scheme, s.mode)
	}
	defPort := "6379"
	if s.mode == modeSentinel {
		defPort = "26379"
	}
	if u.Host == "" {
		return fmt.Errorf("redis: Config.Addr URL %s has no host: use %s://host:port", u.Redacted(), u.Scheme)
	}
	if s.addrs, err = splitAddrs(u.Host, defPort); err != nil {
		return fmt.Errorf("redis: Config.Addr URL %s: %w", u.Redacted(), err)
	}
	if sch.tls && s.tls == nil {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if len(s.addrs) == 1 {
			s.tls.ServerName = u.Hostname()
		}
	}

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
	if err := s.fromPath(u.Path); err != nil {
		return err
	}
	q := u.Query()
	for name, vals := range q {
		v := vals[len(vals)-1]
		switch name {
		case "prefix":
			if err := agree("prefix", &s.prefix, v, true); err != nil {
				return err
			}
		case "min_replicas":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("redis: URL parameter min_replicas=%q is not a number of replicas like 1", v)
			}
			if s.minReplicas != 0 && s.minReplicas != n {
				return fmt.Errorf("redis: URL parameter min_replicas=%d disagrees with the Config field (%d): set only one", n, s.minReplicas)
			}
			s.minReplicas = n
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
			return fmt.Errorf("redis: unknown URL parameter %q: known ones are prefix, lock_ttl, timeout and min_replicas", name)
		}
	}
	return nil
}

// fromPath reads the URL path: /db for one server or a cluster (which has
// only database 0), /mastername[/db] for Sentinel.
func (s *settings) fromPath(path string) error {
	p := strings.Trim(path, "/")
	if s.mode == modeSentinel {
		name, db, _ := strings.Cut(p, "/")
		if name == "" {
			return errors.New("redis: redis+sentinel:// URL names no primary: use redis+sentinel://host:26379/mastername")
		}
		if err := agree("master name", &s.master, name, true); err != nil {
			return err
		}
		p = db
	}
	if p == "" {
		return nil
	}
	db, err := strconv.Atoi(p)
	if err != nil || db < 0 {
		return fmt.Errorf("redis: Config.Addr URL path %q is not a database number: use /0, /1, …", path)
	}
	s.db = db
	return nil
}

// splitAddrs splits a comma-separated list of host:port, adding defPort to
// hosts without one (none may lack it when defPort is empty).
func splitAddrs(list, defPort string) ([]string, error) {
	var addrs []string
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil && defPort != "" {
			host, port, err = a, defPort, nil
			if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
				host = a[1 : len(a)-1]
			}
		}
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%q is not host:port", a)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("%q has an invalid port", a)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
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
