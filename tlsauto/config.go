package tlsauto

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
)

// ACME directory URLs of well-known certificate authorities.
const (
	// LetsEncrypt is Let's Encrypt's production directory, the default CA.
	LetsEncrypt = certmagic.LetsEncryptProductionCA
	// LetsEncryptStaging is Let's Encrypt's staging directory: untrusted
	// certificates, generous rate limits; use it while setting up.
	LetsEncryptStaging = certmagic.LetsEncryptStagingCA
)

// Config is the whole configuration of a Manager. Domains and DNS are
// required; every other field has a working zero value, given in its comment.
type Config struct {
	// Domains are the names to obtain and serve certificates for, one
	// certificate per name. A wildcard ("*.example.com") covers one label.
	// Internationalized names are converted to punycode.
	Domains []string

	// Email is the contact address of the ACME account. Required: without
	// it certmagic would prompt on standard input or borrow the address of
	// another Manager in the same process.
	Email string

	// CA is the ACME directory URL. Default: LetsEncrypt.
	CA string

	// CAs are several CAs to use in order, instead of CA, CARoots, EAB and
	// Profile: when an attempt at the first fails for a name (the CA is
	// down, rate-limits or refuses), the next is tried, and so on; the
	// next attempt (a renewal, say) starts at the first again, so
	// certificates go back to it once it recovers. One member orders each
	// name whichever CA serves it, and every member serves what it
	// obtained. Default: none; the single CA of the fields below.
	CAs []CA

	// CARoots are the roots trusted for the ACME server's own HTTPS
	// connection. Default: the system roots.
	CARoots *x509.CertPool

	// DNS writes the _acme-challenge TXT records: any libdns provider that
	// can append and delete records. Required. Its transient errors are
	// retried with dnsprovider.WithRetry's default policy, unless it already
	// is or wraps a WithRetry provider.
	DNS dnsprovider.Provider

	// Storage holds certificates, keys, ACME accounts, locks and the
	// journal of DNS-01 challenge records; members of a fleet share it.
	// Default: a directory named certfleet in the user's data directory
	// ($XDG_DATA_HOME or ~/.local/share).
	Storage certmagic.Storage

	// Resolvers are recursive DNS servers ("host" or "host:port") through
	// which the zone of each challenge record, a CNAME delegating its
	// _acme-challenge name, and the zone's nameservers are found. Under
	// PropagationCheck "resolvers" they also check propagation. Default:
	// the system's resolvers (/etc/resolv.conf).
	Resolvers []string

	// PropagationCheck says which servers must serve a challenge record
	// before the CA is asked to validate it: dns01.PropagationAuto (the
	// default: every authoritative nameserver of the zone, asked directly;
	// where port 53 to them is blocked, which is known within seconds and
	// logged once, the servers in Resolvers instead), PropagationAll (every
	// authoritative nameserver; fails at once when they cannot be reached),
	// PropagationAny (one of them), PropagationResolvers (every server in
	// Resolvers) or PropagationSkip (no check).
	PropagationCheck dns01.Propagation

	// PropagationDelay is waited after a challenge record is written,
	// before the propagation check. Default: 0; at most 1 hour.
	PropagationDelay time.Duration

	// PropagationTimeout bounds the wait for challenge records to
	// propagate. Default: 2 minutes; 1 s to 1 hour; negative: do not check
	// (the same as PropagationSkip).
	PropagationTimeout time.Duration

	// SolverLease is how long this Manager's claim on the DNS-01 challenge
	// records it writes lasts in Storage; it is renewed while the Manager
	// runs, and each member looks for records of dead members this often.
	// The records of a member that dies are swept by the others within
	// about twice SolverLease. Members' clocks must agree to well within it.
	// Default: 1 minute; 100 ms to 1 hour.
	SolverLease time.Duration

	// DNSPort is the port on which the zones' authoritative nameservers are
	// queried for the propagation check. Default: 53.
	DNSPort int

	// Logger receives the Manager's logs, certmagic's included. Default:
	// slog.Default().
	Logger *slog.Logger

	// KeyType is the type of certificate keys. Default: KeyP256.
	KeyType KeyType

	// Profile is the ACME certificate profile to request (a CA-defined name
	// such as "shortlived"). Default: the CA's default profile.
	Profile string

	// EAB is the External Account Binding some CAs require. Default: none.
	EAB *EAB

	// OnEvent, if set, is called for each certificate obtained, renewed or
	// failed. It is called synchronously from the goroutine that did the
	// work and must not block.
	OnEvent func(Event)

	// RenewalCheckInterval is how often certificates are checked for
	// renewal. Default: 10 minutes; 100 ms to 24 hours.
	RenewalCheckInterval time.Duration

	// RenewalWindowRatio is the fraction of a certificate's lifetime left
	// when it is renewed, unless the CA suggests a time (ACME ARI).
	// Default: 1/3.
	RenewalWindowRatio float64

	// SyncInterval is how often storage is polled for certificates that
	// other members of the fleet obtained or renewed, when the storage has
	// no change feed (storage.Watcher). Storage with a change feed delivers
	// them within seconds. Default: 1 minute; 100 ms to 24 hours.
	SyncInterval time.Duration

	// ChainRoots are the roots that the certificates served must chain to.
	// Default: the system roots; a certificate whose chain reaches none of
	// them (from a private CA) is then served only if its chain is
	// complete as the CA returned it, each certificate signed by the next.
	// Set it for a private CA to have chains checked against its root.
	ChainRoots *x509.CertPool

	// ServeExpired serves a certificate that has expired (or whose
	// renewal is overdue) when no valid one can be had, for example while
	// the CA is unreachable: some clients prefer an expired certificate to
	// a failed handshake. Start still reports such a name as not ready.
	// Default: off; an expired certificate is never served, and the name
	// fails its handshakes until a valid certificate arrives.
	ServeExpired bool

	// HealthyLifetimeLeft is the fraction of its lifetime a served
	// certificate must have left for HealthHandler (and Status) to call
	// its name healthy. Default: 0.1; in (0, 1).
	HealthyLifetimeLeft float64

	// ShareNames keeps the names added with Manage (and removed with
	// Unmanage) in Storage, so that every member of the fleet sharing it
	// serves the same names: a name managed at one member is served by all
	// within the time a certificate takes to reach them (seconds with a
	// change feed, SyncInterval otherwise), with one order per name across
	// the fleet. Names of Domains are managed whatever the shared set says.
	// Default: off; Manage and Unmanage act on this Manager only.
	ShareNames bool

	// StagingRetries makes retries after a failed attempt against
	// LetsEncrypt go to LetsEncryptStaging first (certmagic's TestCA), to
	// spare production rate limits. Default: off; every attempt goes to CA.
	StagingRetries bool

	// OrderBudget is how many new orders the whole fleet sharing Storage
	// places with the CA account (the first CA of CAs) in any
	// OrderBudgetWindow: an attempt that would exceed it waits for a slot,
	// reserved for its name in Storage, so that the first issuance of many
	// names is paced within the CA's limit instead of failing against it.
	// Default (0): DefaultOrderBudget, Let's Encrypt's published limit of
	// 300 new orders per account per 3 hours; at most 1,000,000; negative:
	// no budget. Whatever the budget, when the CA answers rateLimited (or
	// 503 naming a time, or server errors several attempts in a row), no
	// member orders from it until the time it gave.
	OrderBudget int

	// OrderBudgetWindow is the window of OrderBudget. Default:
	// DefaultOrderBudgetWindow (3 hours); 1 s to 7 days.
	OrderBudgetWindow time.Duration
	// SessionTickets says whose keys encrypt TLS session tickets:
	// TicketsShared (the default) keeps them in Storage, so that a session
	// begun at one member of the fleet resumes at any other; TicketsLocal
	// leaves them to crypto/tls, which makes random keys for each
	// tls.Config value; TicketsOff turns session tickets off. See
	// Manager.InstallSessionTickets.
	SessionTickets TicketMode

	// SessionTicketRotation is how often, under TicketsShared, a new
	// session ticket key is made (by one member, for the whole fleet) and
	// starts encrypting new tickets. Default: 12 hours; 1 s to 7 days.
	SessionTicketRotation time.Duration

	// SessionTicketLifetime is how long, under TicketsShared, a session
	// ticket key still decrypts tickets after it was made: a ticket
	// resumes for between SessionTicketLifetime−SessionTicketRotation and
	// SessionTicketLifetime after it was issued. Default: 3 ×
	// SessionTicketRotation (36 hours with the default rotation);
	// SessionTicketRotation to 16 × SessionTicketRotation, and at most
	// 7 days (crypto/tls refuses older sessions anyway).
	SessionTicketLifetime time.Duration
}

// CA is an ACME certificate authority of Config.CAs.
type CA struct {
	// URL is the ACME directory URL. Default: LetsEncrypt.
	URL string
	// Roots are the roots trusted for the CA's own HTTPS. Default: the
	// system roots.
	Roots *x509.CertPool
	// EAB is the External Account Binding the CA requires, if any.
	EAB *EAB
	// Profile is the certificate profile to request from this CA.
	Profile string
}

// KeyType is the type of key a certificate is issued for.
type KeyType string

// Key types.
const (
	KeyP256    KeyType = "p256"    // ECDSA P-256 (default)
	KeyP384    KeyType = "p384"    // ECDSA P-384
	KeyRSA2048 KeyType = "rsa2048" // RSA 2048 bits
	KeyRSA4096 KeyType = "rsa4096" // RSA 4096 bits
)

// ParseKeyType reads a key type name, ignoring case, hyphens and
// underscores ("P-256", "rsa_4096").
func ParseKeyType(s string) (KeyType, error) {
	k := KeyType(strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(strings.TrimSpace(s))))
	switch k {
	case KeyP256, KeyP384, KeyRSA2048, KeyRSA4096:
		return k, nil
	}
	return "", fmt.Errorf("unknown key type %q: use p256, p384, rsa2048 or rsa4096", s)
}

// EAB is an ACME External Account Binding: the key identifier and MAC key a
// CA gives out of band. Its String method never shows the MAC key.
type EAB struct {
	KeyID  string
	MACKey string // base64url, as CAs hand it out
}

// String describes b without its MAC key.
func (b EAB) String() string { return fmt.Sprintf("EAB{KeyID: %q, MACKey: <redacted>}", b.KeyID) }

// GoString is String, so that %#v does not show the MAC key either.
func (b EAB) GoString() string { return b.String() }

// MarshalJSON writes String as a JSON string, so that a EAB inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (b EAB) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// Format writes String for every verb.
func (b EAB) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(b.String())) }

// LogValue is how slog shows an EAB: its key id only.
func (b EAB) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", b.KeyID), slog.String("mac_key", "<redacted>"))
}

// String describes c without the secrets it may reach: the EAB's MAC key,
// and whatever the DNS provider and the storage hold (they are shown by
// their String method, or else by type or provider name, never by
// reflection).
func (c Config) String() string {
	eab := "nil"
	if c.EAB != nil {
		eab = c.EAB.String()
	}
	cas := make([]string, len(c.CAs))
	for i, ca := range c.CAs {
		cas[i] = ca.URL
		if ca.EAB != nil {
			cas[i] += " with " + ca.EAB.String()
		}
	}
	return fmt.Sprintf("tlsauto.Config{Domains: %q, Email: %q, CA: %q, CAs: %q, DNS: %s, Storage: %s, KeyType: %q, Profile: %q, EAB: %s}",
		c.Domains, c.Email, c.CA, cas, describeDNS(c.DNS), describeStorage(c.Storage), c.KeyType, c.Profile, eab)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string: marshalled by reflection, a
// Config would show the fields of its DNS provider, credentials included.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: as String does.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Any("domains", c.Domains), slog.String("email", c.Email), slog.String("ca", c.CA),
		slog.String("dns", describeDNS(c.DNS)), slog.String("storage", describeStorage(c.Storage)),
	}
	if c.EAB != nil {
		attrs = append(attrs, slog.Any("eab", *c.EAB))
	}
	return slog.GroupValue(attrs...)
}

func describeDNS(p dnsprovider.Provider) string {
	if p == nil {
		return "nil"
	}
	if s, ok := p.(fmt.Stringer); ok {
		return s.String()
	}
	return dnsprovider.Name(p)
}

func describeStorage(s certmagic.Storage) string {
	if s == nil {
		return "nil"
	}
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// settings is a validated Config with defaults applied.
type settings struct {
	domains         []string
	email           string
	cas             []CA
	stagingRetries  bool
	resolvers       []string
	keyType         certmagic.KeyType
	checkInterval   time.Duration
	syncInterval    time.Duration
	renewalRatio    float64
	propagationTTL  time.Duration
	propagation     dns01.Propagation
	logger          *slog.Logger
	shareNames      bool
	serveExpired    bool
	chainRoots      *x509.CertPool
	minLifetimeLeft float64

	orderBudget       int // 0: none
	orderBudgetWindow time.Duration
	tickets           ticketSettings
}

// validate checks c and fills in defaults. Every error names the field.
func (c *Config) validate() (settings, error) {
	var s settings
	var err error
	if s.domains, err = normalizeNames("Domains", c.Domains); err != nil {
		return s, err
	}
	if s.email, err = checkEmail(c.Email); err != nil {
		return s, err
	}
	if s.cas, err = c.checkCAs(); err != nil {
		return s, err
	}
	s.stagingRetries = c.StagingRetries
	if c.DNS == nil {
		return s, invalid("DNS", "a DNS provider is required (for example dnsprovider.FromEnv(\"cloudflare\"))")
	}
	if s.resolvers, err = checkResolvers(c.Resolvers); err != nil {
		return s, err
	}
	kt := c.KeyType
	if kt == "" {
		kt = KeyP256
	}
	if kt, err = ParseKeyType(string(kt)); err != nil {
		return s, invalid("KeyType", "%w", err)
	}
	s.keyType = certmagic.KeyType(kt)
	if s.checkInterval, err = checkDuration("RenewalCheckInterval", c.RenewalCheckInterval, certmagic.DefaultRenewCheckInterval, minInterval, 24*time.Hour); err != nil {
		return s, err
	}
	if s.syncInterval, err = checkDuration("SyncInterval", c.SyncInterval, time.Minute, minInterval, 24*time.Hour); err != nil {
		return s, err
	}
	if _, err = checkDuration("SolverLease", c.SolverLease, time.Minute, minInterval, time.Hour); err != nil {
		return s, err
	}
	switch r := c.RenewalWindowRatio; {
	case r == 0:
		s.renewalRatio = certmagic.DefaultRenewalWindowRatio
	case r < 0 || r >= 1:
		return s, invalid("RenewalWindowRatio", "%v is outside (0, 1): use 0 for the default (1/3)", r)
	default:
		s.renewalRatio = r
	}
	if c.PropagationTimeout < 0 {
		s.propagationTTL = -1
	} else if s.propagationTTL, err = checkDuration("PropagationTimeout", c.PropagationTimeout, 2*time.Minute, time.Second, time.Hour); err != nil {
		return s, err
	}
	if s.propagation, err = dns01.ParsePropagation(string(c.PropagationCheck)); err != nil {
		return s, invalid("PropagationCheck", "%w", err)
	}
	if s.propagationTTL < 0 {
		s.propagation = dns01.PropagationSkip
	}
	if s.propagation == dns01.PropagationResolvers && len(s.resolvers) == 0 {
		return s, invalid("PropagationCheck", "%q checks through Resolvers: set Resolvers too", s.propagation)
	}
	switch {
	case c.PropagationDelay < 0:
		return s, invalid("PropagationDelay", "%v is negative: use 0 for no delay", c.PropagationDelay)
	case c.PropagationDelay > time.Hour:
		return s, invalid("PropagationDelay", "%v is longer than the maximum, 1h", c.PropagationDelay)
	}
	if c.DNSPort < 0 || c.DNSPort > 65535 {
		return s, invalid("DNSPort", "%d is not a port number: use 1 to 65535, or 0 for the default (53)", c.DNSPort)
	}
	switch f := c.HealthyLifetimeLeft; {
	case f == 0:
		s.minLifetimeLeft = 0.1
	case f < 0 || f >= 1:
		return s, invalid("HealthyLifetimeLeft", "%v is outside (0, 1): use 0 for the default (0.1)", f)
	default:
		s.minLifetimeLeft = f
	}
	if s.orderBudget, s.orderBudgetWindow, err = c.checkOrderBudget(); err != nil {
		return s, err
	}
	if s.tickets, err = c.checkTickets(); err != nil {
		return s, err
	}
	s.shareNames = c.ShareNames
	s.serveExpired = c.ServeExpired
	s.chainRoots = c.ChainRoots
	s.logger = c.Logger
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s, nil
}

// minInterval is the shortest interval a Config accepts: shorter ones
// would only burn CPU.
const minInterval = 100 * time.Millisecond

// checkDuration applies a duration field's default (for 0) and bounds.
func checkDuration(field string, v, def, lo, hi time.Duration) (time.Duration, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0:
		return 0, invalid(field, "%v is negative: use 0 for the default (%v)", v, def)
	case v < lo:
		return 0, invalid(field, "%v is shorter than the minimum, %v (0 means the default, %v)", v, lo, def)
	case v > hi:
		return 0, invalid(field, "%v is longer than the maximum, %v", v, hi)
	}
	return v, nil
}

// ConfigError reports an invalid Config field; New returns it wrapped.
type ConfigError struct {
	Field string // the field, such as "Email" or "Domains[2]"
	Err   error  // what is wrong and how to fix it
}

// Error names the field and what is wrong with it.
func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns e.Err.
func (e *ConfigError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

func checkEmail(email string) (string, error) {
	if email == "" {
		return "", invalid("Email", "required: the CA's contact for this account, such as ops@example.com")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return "", invalid("Email", "%q is not a plain e-mail address such as ops@example.com", email)
	}
	return strings.ToLower(email), nil
}

// checkCAs returns the CAs to use, in order: Config.CAs, or the one CA of
// Config.CA, CARoots, EAB and Profile.
func (c *Config) checkCAs() ([]CA, error) {
	if len(c.CAs) == 0 {
		ca := CA{URL: c.CA, Roots: c.CARoots, EAB: c.EAB, Profile: c.Profile}
		if err := ca.check(""); err != nil {
			return nil, err
		}
		return []CA{ca}, nil
	}
	if c.CA != "" || c.CARoots != nil || c.EAB != nil || c.Profile != "" {
		return nil, invalid("CAs", "set either CAs or CA (with CARoots, EAB and Profile), not both: each entry of CAs has its own")
	}
	cas := slices.Clone(c.CAs)
	seen := map[string]int{}
	for i := range cas {
		if err := cas[i].check(fmt.Sprintf("CAs[%d].", i)); err != nil {
			return nil, err
		}
		if j, dup := seen[cas[i].URL]; dup {
			return nil, invalid(fmt.Sprintf("CAs[%d].URL", i), "%q is CAs[%d] too: list each CA once", cas[i].URL, j)
		}
		seen[cas[i].URL] = i
	}
	return cas, nil
}

// check validates ca and fills in its default URL; prefix is the field
// path of its fields in errors ("" for Config's own CA fields).
func (ca *CA) check(prefix string) error {
	urlField := prefix + "URL"
	if prefix == "" {
		urlField = "CA"
	}
	var err error
	if ca.URL, err = checkCA(urlField, ca.URL); err != nil {
		return err
	}
	if err := checkProfile(prefix+"Profile", ca.Profile); err != nil {
		return err
	}
	return checkEAB(prefix+"EAB", ca.EAB)
}

func checkCA(field, ca string) (string, error) {
	if ca == "" {
		return LetsEncrypt, nil
	}
	u, err := url.Parse(ca)
	switch {
	case err != nil:
		return "", invalid(field, "%q is not a URL: %w", ca, err)
	case u.Scheme != "https":
		return "", invalid(field, "%q must be an https:// ACME directory URL (ACME requires HTTPS)", ca)
	case u.Host == "" || u.Hostname() == "":
		return "", invalid(field, "%q has no host", ca)
	case u.User != nil:
		return "", invalid(field, "the URL must not carry credentials; use EAB for account binding")
	case u.Fragment != "":
		return "", invalid(field, "%q has a #fragment; give the directory URL", ca)
	}
	return u.String(), nil
}

func checkResolvers(rs []string) ([]string, error) {
	out := make([]string, 0, len(rs))
	for i, r := range rs {
		host, port := r, "53"
		if h, p, err := net.SplitHostPort(r); err == nil {
			host, port = h, p
		}
		if _, err := netip.ParseAddr(host); err != nil && !isHostname(host) {
			return nil, invalid(fmt.Sprintf("Resolvers[%d]", i), "%q is not an IP address or host name (with an optional :port)", r)
		}
		if n, err := netip.ParseAddrPort("0.0.0.0:" + port); err != nil || n.Port() == 0 {
			return nil, invalid(fmt.Sprintf("Resolvers[%d]", i), "%q has an invalid port", r)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

func isHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if checkLabel(strings.ToLower(l)) != nil {
			return false
		}
	}
	return true
}

func checkProfile(field, p string) error {
	for _, c := range p {
		if c <= ' ' || c > '~' {
			return invalid(field, "%q is not a profile name (printable ASCII without spaces)", p)
		}
	}
	return nil
}

func checkEAB(field string, b *EAB) error {
	if b == nil {
		return nil
	}
	if b.KeyID == "" || b.MACKey == "" {
		return invalid(field, "both KeyID and MACKey are required")
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b.MACKey, "="))
	if err != nil || len(key) == 0 {
		// Never echo the key itself.
		return invalid(field, "MACKey is not base64url-encoded; paste it exactly as the CA gave it")
	}
	return nil
}

// checkOrderBudget applies the defaults and bounds of OrderBudget and
// OrderBudgetWindow; a budget of 0 means none.
func (c *Config) checkOrderBudget() (int, time.Duration, error) {
	window, err := checkDuration("OrderBudgetWindow", c.OrderBudgetWindow, DefaultOrderBudgetWindow, time.Second, 7*24*time.Hour)
	if err != nil {
		return 0, 0, err
	}
	switch n := c.OrderBudget; {
	case n == 0:
		return DefaultOrderBudget, window, nil
	case n < 0:
		return 0, window, nil
	case n > maxOrderBudget:
		return 0, 0, invalid("OrderBudget", "%d is more than the maximum, %d: use a negative value for no budget", n, maxOrderBudget)
	default:
		return n, window, nil
	}
}
