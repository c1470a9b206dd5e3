// Package route53 is certfleet's Amazon Route 53 DNS provider:
// libdns/route53 with its configuration validated at construction, AWS errors
// turned into dnsprovider.StatusError (status, AWS error code) so that
// dnsprovider.WithRetry can classify them, idempotent appends, and credentials
// kept out of every error, log and formatted value.
//
// libdns/route53 calls log.Fatalf, ending the program, when the AWS
// configuration cannot be loaded. New loads it first, with the same inputs,
// and returns that error instead; it then initializes the libdns provider at
// once (without a network call), so that nothing is loaded later.
//
// Importing the package registers the provider as "route53":
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/route53"
//
//	p, err := dnsprovider.FromEnv("route53")
//
// Environment: the standard AWS chain applies (environment, shared config
// and credentials files, SSO, container and instance roles). FromEnv reads
// AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN (the last three also as _FILE paths),
// CERTFLEET_ROUTE53_HOSTED_ZONE_ID (skip the zone lookup) and
// CERTFLEET_ROUTE53_WAIT_FOR_SYNC (true: wait until Route 53 reports a
// change INSYNC). A custom endpoint comes from AWS_ENDPOINT_URL_ROUTE_53 or
// AWS_ENDPOINT_URL, which the AWS SDK reads from the process environment
// only, when New runs.
package route53

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	r53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/libdns/libdns"
	libdnsr53 "github.com/libdns/route53"
)

// Environment variables read by FromEnv. The credentials may also be given
// as file paths in NAME_FILE.
const (
	EnvRegion          = "AWS_REGION"
	EnvProfile         = "AWS_PROFILE"
	EnvAccessKeyID     = "AWS_ACCESS_KEY_ID"
	EnvSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	EnvSessionToken    = "AWS_SESSION_TOKEN"
	EnvHostedZoneID    = "CERTFLEET_ROUTE53_HOSTED_ZONE_ID"
	EnvWaitForSync     = "CERTFLEET_ROUTE53_WAIT_FOR_SYNC"
	EnvEndpoint        = "AWS_ENDPOINT_URL_ROUTE_53"
	EnvEndpointAll     = "AWS_ENDPOINT_URL"
)

func init() {
	dnsprovider.Register("route53", FromEnv)
}

// Config configures a Route 53 provider. Every field is optional: what is
// not set comes from the standard AWS chain. Formatting a Config (fmt, slog)
// never shows the credentials.
type Config struct {
	// Region is the AWS region for the API client. Default: the AWS chain's
	// region, else us-east-1 (Route 53 is a global service).
	Region string

	// Profile names a profile of the shared AWS config files; it must exist.
	Profile string

	// AccessKeyID and SecretAccessKey are static credentials, set both or
	// neither; SessionToken goes with them for temporary credentials.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// HostedZoneID is the id of the hosted zone to write to ("Z…", with or
	// without "/hostedzone/"). Default: looked up by zone name on each call.
	// When set, every call goes to this zone, whatever zone it names.
	HostedZoneID string

	// MaxAttempts is the number of attempts the AWS SDK makes for one API
	// request (its own retries of throttling and server errors). Default 3;
	// 1 leaves all retrying to dnsprovider.WithRetry.
	MaxAttempts int

	// WaitForSync makes each change wait until Route 53 reports it INSYNC
	// on all its name servers, polling GetChange (the AWS SDK waiter polls
	// every 30 s or more), for at most SyncTimeout (default 1 minute).
	WaitForSync bool
	SyncTimeout time.Duration

	// Logger receives libdns/route53's debug logs (zone, name, change id;
	// never credentials). Nil discards them.
	Logger *slog.Logger
}

// String describes the Config without its credentials.
func (c Config) String() string {
	return fmt.Sprintf("route53.Config{Region: %q, Profile: %q, AccessKeyID: %s, SecretAccessKey: %s, SessionToken: %s, HostedZoneID: %q, MaxAttempts: %d, WaitForSync: %t}",
		c.Region, c.Profile, redacted(c.AccessKeyID), redacted(c.SecretAccessKey), redacted(c.SessionToken), c.HostedZoneID, c.MaxAttempts, c.WaitForSync)
}

// GoString is String: %#v does not show the credentials either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb, so that no verb shows the credentials.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without its credentials.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("region", c.Region), slog.String("profile", c.Profile),
		slog.String("access_key_id", redacted(c.AccessKeyID)), slog.String("secret_access_key", redacted(c.SecretAccessKey)),
		slog.String("session_token", redacted(c.SessionToken)), slog.String("hosted_zone_id", c.HostedZoneID))
}

func redacted(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "[redacted]"
}

// FromEnv builds a provider from the variables listed in the package
// documentation as getenv returns them; a nil getenv reads the process
// environment. The rest of the AWS chain is read by the AWS SDK from the
// process environment and files.
func FromEnv(getenv func(string) string) (dnsprovider.Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var cfg Config
	var errs []error
	secret := func(name string, dst *string) {
		v, err := dnsprovider.LookupEnv(getenv, name)
		if err != nil {
			errs = append(errs, err)
		}
		*dst = v
	}
	secret(EnvAccessKeyID, &cfg.AccessKeyID)
	secret(EnvSecretAccessKey, &cfg.SecretAccessKey)
	secret(EnvSessionToken, &cfg.SessionToken)
	cfg.Region = getenv(EnvRegion)
	cfg.Profile = getenv(EnvProfile)
	cfg.HostedZoneID = getenv(EnvHostedZoneID)
	if v := getenv(EnvWaitForSync); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", EnvWaitForSync, v))
		}
		cfg.WaitForSync = b
	}
	for _, name := range []string{EnvEndpoint, EnvEndpointAll} {
		if v := getenv(name); v != "" {
			if err := checkEndpoint(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			} else if v != os.Getenv(name) {
				errs = append(errs, fmt.Errorf("%s: the AWS SDK reads it from the process environment only, where it is not %q: set it there", name, v))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return newProvider(cfg, envNames)
}

// fieldNames names the settings in errors: Config fields for New, variables
// for FromEnv.
type fieldNames struct {
	region, profile, accessKeyID, secretAccessKey, sessionToken, hostedZoneID string
}

var (
	structNames = fieldNames{"Region", "Profile", "AccessKeyID", "SecretAccessKey", "SessionToken", "HostedZoneID"}
	envNames    = fieldNames{EnvRegion, EnvProfile, EnvAccessKeyID, EnvSecretAccessKey, EnvSessionToken, EnvHostedZoneID}
)

// New returns a Route 53 provider after checking cfg and loading the AWS
// configuration as libdns/route53 will (environment, shared files, profile):
// every problem there is an error here, never an exit. No network call is
// made; credentials that come from the network (SSO, roles) are fetched on
// first use.
func New(cfg Config) (dnsprovider.Provider, error) {
	return newProvider(cfg, structNames)
}

var (
	regionRE       = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+)*-[0-9]+$|^aws-global$`)
	accessKeyIDRE  = regexp.MustCompile(`^[A-Za-z0-9]{16,128}$`)
	hostedZoneIDRE = regexp.MustCompile(`^[A-Z0-9]{1,32}$`)
)

func checkRegion(region string) error {
	if !regionRE.MatchString(region) {
		return fmt.Errorf("%q is not an AWS region name such as us-east-1", region)
	}
	return nil
}

// checkSecret rejects whitespace and control characters without showing
// the value.
func checkSecret(field, v string) error {
	for _, r := range v {
		if r <= ' ' || r >= 0x7f {
			return fmt.Errorf("%s contains whitespace, a control character or a non-ASCII character (a stray newline or space?)", field)
		}
	}
	return nil
}

func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %w", v, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must be an http:// or https:// URL", v)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", v)
	case u.User != nil:
		return errors.New("the endpoint URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", v)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q has an invalid port", v)
		}
	}
	return nil
}

func newProvider(cfg Config, names fieldNames) (*Provider, error) {
	var errs []error
	if cfg.Region != "" {
		if err := checkRegion(cfg.Region); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", names.region, err))
		}
	}
	if cfg.Profile != "" && strings.TrimSpace(cfg.Profile) != cfg.Profile {
		errs = append(errs, fmt.Errorf("%s %q has leading or trailing spaces", names.profile, cfg.Profile))
	}
	switch {
	case cfg.AccessKeyID != "" && cfg.SecretAccessKey == "":
		errs = append(errs, fmt.Errorf("%s is set but %s is not: set both, or neither to use the rest of the AWS chain", names.accessKeyID, names.secretAccessKey))
	case cfg.AccessKeyID == "" && cfg.SecretAccessKey != "":
		errs = append(errs, fmt.Errorf("%s is set but %s is not: set both, or neither to use the rest of the AWS chain", names.secretAccessKey, names.accessKeyID))
	case cfg.AccessKeyID == "" && cfg.SessionToken != "":
		errs = append(errs, fmt.Errorf("%s is set without %s and %s: a session token goes with temporary keys", names.sessionToken, names.accessKeyID, names.secretAccessKey))
	}
	if cfg.AccessKeyID != "" {
		if err := checkSecret(names.accessKeyID, cfg.AccessKeyID); err != nil {
			errs = append(errs, err)
		} else if !accessKeyIDRE.MatchString(cfg.AccessKeyID) {
			errs = append(errs, fmt.Errorf("%s is not an AWS access key id (16 to 128 letters and digits, like AKIA…)", names.accessKeyID))
		}
	}
	for _, s := range []struct{ name, v string }{{names.secretAccessKey, cfg.SecretAccessKey}, {names.sessionToken, cfg.SessionToken}} {
		if err := checkSecret(s.name, s.v); err != nil {
			errs = append(errs, err)
		}
	}
	zoneID := strings.TrimPrefix(cfg.HostedZoneID, "/hostedzone/")
	if zoneID != "" && !hostedZoneIDRE.MatchString(zoneID) {
		errs = append(errs, fmt.Errorf("%s %q is not a Route 53 hosted zone id (upper-case letters and digits, like Z1D633PJN98FT9)", names.hostedZoneID, cfg.HostedZoneID))
	}
	if cfg.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts is %d: want 0 (default) or more", cfg.MaxAttempts))
	}
	if cfg.SyncTimeout < 0 {
		errs = append(errs, fmt.Errorf("SyncTimeout is %s: want 0 (default) or more", cfg.SyncTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = time.Minute
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	// Load the AWS configuration exactly as libdns/route53's init will
	// (same options, same canceled context), so that its log.Fatalf cannot
	// be reached: if this load succeeds, so does that one.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	loaded, err := config.LoadDefaultConfig(ctx, loadOptions(cfg)...)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "ec2imds") {
			hint = " (defaults mode \"auto\", from AWS_DEFAULTS_MODE or defaults_mode in the shared config, needs the EC2 metadata service when the configuration loads: choose standard, in-region or cross-region instead)"
		}
		return nil, fmt.Errorf("loading the AWS configuration (environment variables, shared config files, profile)%s: %w", hint, err)
	}
	if cfg.Region == "" {
		if loaded.Region == "" {
			cfg.Region = "us-east-1"
		} else if err := checkRegion(loaded.Region); err != nil {
			return nil, fmt.Errorf("the region of the AWS chain (%s or the shared config): %w", EnvRegion, err)
		}
	}
	if ep := r53.NewFromConfig(loaded).Options().BaseEndpoint; ep != nil {
		if err := checkEndpoint(*ep); err != nil {
			return nil, fmt.Errorf("the Route 53 endpoint (%s, %s or endpoint_url in the shared config): %w", EnvEndpoint, EnvEndpointAll, err)
		}
	}

	p := &Provider{
		cfg: cfg,
		inner: &libdnsr53.Provider{
			Region:             cfg.Region,
			Profile:            cfg.Profile,
			AccessKeyId:        cfg.AccessKeyID,
			SecretAccessKey:    cfg.SecretAccessKey,
			SessionToken:       cfg.SessionToken,
			MaxRetries:         cfg.MaxAttempts,
			HostedZoneID:       zoneID,
			WaitForRoute53Sync: cfg.WaitForSync,
			Route53MaxWait:     cfg.SyncTimeout,
			Logger:             logger,
		},
	}
	// Initialize libdns/route53 now: its first call loads the configuration
	// and builds the client; the canceled context stops the API request
	// before anything is sent. The call's error (context canceled) is moot.
	if err := p.do("init", "", func() error {
		_, _ = p.inner.GetRecords(ctx, "init.invalid.")
		return nil
	}); err != nil {
		return nil, fmt.Errorf("initializing libdns/route53: %w", err)
	}
	return p, nil
}

// loadOptions are the options libdns/route53 gives config.LoadDefaultConfig
// for cfg (v1.6.2, client.go init).
func loadOptions(cfg Config) []func(*config.LoadOptions) error {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.AddWithMaxAttempts(retry.NewStandard(), cfg.MaxAttempts)
		}),
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" && cfg.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	return opts
}

// Provider is a Route 53 DNS provider; it implements dnsprovider.Provider,
// libdns.RecordGetter and libdns.RecordSetter, and is safe for concurrent
// use. Errors are *dnsprovider.OpError values wrapping a
// *dnsprovider.StatusError for API errors. Formatting a Provider never shows
// its credentials.
type Provider struct {
	cfg   Config
	inner *libdnsr53.Provider
}

// ProviderName returns "route53".
func (p *Provider) ProviderName() string { return "route53" }

// String describes the provider without its credentials.
func (p Provider) String() string { return "route53.Provider{" + p.cfg.String() + "}" }

// GoString is String.
func (p Provider) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Provider) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue is how slog shows a Provider: without its credentials.
func (p Provider) LogValue() slog.Value { return p.cfg.LogValue() }

var (
	_ dnsprovider.Provider = (*Provider)(nil)
	_ libdns.RecordGetter  = (*Provider)(nil)
	_ libdns.RecordSetter  = (*Provider)(nil)
	_ fmt.Formatter        = Config{}
	_ slog.LogValuer       = Provider{}
	_ fmt.Formatter        = Provider{}
)
