// Package azure is certfleet's Azure DNS provider, written on the Azure
// Resource Manager REST API (Microsoft.Network/dnsZones, api-version
// 2018-05-01): a service principal's client secret is exchanged for an
// access token at the Microsoft identity platform (reused until shortly
// before it expires), and each change to a TXT record set is a conditional
// write (If-Match with the ETag read, If-None-Match: * to create), so that
// concurrent writers (other members of a fleet, other tools) never
// overwrite each other's values: on a conflict the set is read again. API
// errors are dnsprovider.StatusError values (status, Azure's error code,
// Retry-After) for dnsprovider.WithRetry; appends and deletes are
// idempotent; the client secret never appears in an error, log or
// formatted value.
//
// It does not use github.com/libdns/azure (v0.5.0): that library builds its
// clients with the Azure SDK's defaults (management.azure.com, no HTTP
// client option), so it cannot be tested against a fake on loopback; its
// append creates record sets with If-None-Match: *, so a second challenge
// value at the same name (an apex and a wildcard certificate) fails; its
// delete removes the whole record set whatever the value, taking other
// challenges' values with it; and it prints every record it writes to
// standard output.
//
// Importing the package registers the provider as "azure":
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/azure"
//
//	p, err := dnsprovider.FromEnv("azure")
//
// Environment (the names of Azure's own tools): AZURE_TENANT_ID,
// AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (also as a file path in
// AZURE_CLIENT_SECRET_FILE), AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP
// (the group that holds the DNS zones), all required, and AZURE_ENVIRONMENT
// (public, the default; usgovernment; china). The service principal needs
// the DNS Zone Contributor role on the zones or their resource group.
// Managed identities are not supported.
package azure

import (
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
	"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi"
)

// Environment variables read by FromEnv. The client secret may also be
// given as a file path in AZURE_CLIENT_SECRET_FILE.
const (
	EnvTenantID       = "AZURE_TENANT_ID"
	EnvClientID       = "AZURE_CLIENT_ID"
	EnvClientSecret   = "AZURE_CLIENT_SECRET"
	EnvSubscriptionID = "AZURE_SUBSCRIPTION_ID"
	EnvResourceGroup  = "AZURE_RESOURCE_GROUP"
	EnvEnvironment    = "AZURE_ENVIRONMENT"
)

func init() {
	dnsprovider.Register("azure", FromEnv)
}

// cloud is one Azure cloud's endpoints. Requests go nowhere else.
type cloud struct {
	login, management string // hosts
}

var clouds = map[string]cloud{
	"public":       {"login.microsoftonline.com", "management.azure.com"},
	"usgovernment": {"login.microsoftonline.us", "management.usgovcloudapi.net"},
	"china":        {"login.chinacloudapi.cn", "management.chinacloudapi.cn"},
}

// HTTPClient sends HTTP requests; *http.Client is one.
type HTTPClient = cloudapi.HTTPClient

// Config configures an Azure DNS provider. Formatting a Config (fmt, slog)
// never shows the client secret.
type Config struct {
	// TenantID is the Microsoft Entra tenant (directory) id of the service
	// principal: a GUID or a domain such as contoso.onmicrosoft.com.
	// Required.
	TenantID string

	// ClientID is the application (client) id of the service principal, a
	// GUID. Required.
	ClientID string

	// ClientSecret is a client secret of the service principal (its value,
	// not its id). Required.
	ClientSecret string

	// SubscriptionID is the id of the subscription that holds the DNS
	// zones, a GUID. Required.
	SubscriptionID string

	// ResourceGroup is the resource group that holds the DNS zones.
	// Required.
	ResourceGroup string

	// Environment names the Azure cloud: "public" (default),
	// "usgovernment" or "china".
	Environment string

	// HTTPClient sends the API and token requests. Nil means an http.Client
	// with a 30 s timeout. Tests route requests to a fake API through it.
	HTTPClient HTTPClient
}

// String describes the Config without its client secret.
func (c Config) String() string {
	return fmt.Sprintf("azure.Config{TenantID: %q, ClientID: %q, ClientSecret: %s, SubscriptionID: %q, ResourceGroup: %q, Environment: %q}",
		c.TenantID, c.ClientID, cloudapi.Redacted(c.ClientSecret), c.SubscriptionID, c.ResourceGroup, c.Environment)
}

// GoString is String: %#v does not show the client secret either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb, so that no verb shows the secret.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without its client secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("tenant_id", c.TenantID), slog.String("client_id", c.ClientID),
		slog.String("client_secret", cloudapi.Redacted(c.ClientSecret)),
		slog.String("subscription_id", c.SubscriptionID), slog.String("resource_group", c.ResourceGroup),
		slog.String("environment", c.Environment))
}

// fieldNames names the settings in errors: Config fields for New, variables
// for FromEnv.
type fieldNames struct {
	tenant, client, secret, subscription, group, environment string
}

var (
	structNames = fieldNames{"TenantID", "ClientID", "ClientSecret", "SubscriptionID", "ResourceGroup", "Environment"}
	envNames    = fieldNames{EnvTenantID, EnvClientID, EnvClientSecret, EnvSubscriptionID, EnvResourceGroup, EnvEnvironment}
)

// FromEnv builds a provider from the variables listed in the package
// documentation as getenv returns them; a nil getenv reads the process
// environment.
func FromEnv(getenv func(string) string) (dnsprovider.Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	secret, err := dnsprovider.LookupEnv(getenv, EnvClientSecret)
	if err != nil {
		return nil, err
	}
	return newProvider(Config{
		TenantID: getenv(EnvTenantID), ClientID: getenv(EnvClientID), ClientSecret: secret,
		SubscriptionID: getenv(EnvSubscriptionID), ResourceGroup: getenv(EnvResourceGroup),
		Environment: getenv(EnvEnvironment),
	}, envNames)
}

// New returns an Azure DNS provider after checking cfg: every setting must
// be present and well formed. No network call is made.
func New(cfg Config) (dnsprovider.Provider, error) {
	return newProvider(cfg, structNames)
}

var (
	guidRE   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tenantRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)
	// Azure's rule for resource group names: letters, digits, underscores,
	// parentheses, hyphens and periods, not ending in a period.
	groupRE = regexp.MustCompile(`^[-\pL\pN_.()]{1,90}$`)
)

func newProvider(cfg Config, names fieldNames) (*Provider, error) {
	var errs []error
	missing := func(field, what string) {
		errs = append(errs, fmt.Errorf("%s is not set: %s", field, what))
	}
	switch {
	case cfg.TenantID == "":
		missing(names.tenant, "set it to the directory (tenant) id of the service principal")
	case !guidRE.MatchString(cfg.TenantID) && !tenantRE.MatchString(cfg.TenantID):
		errs = append(errs, fmt.Errorf("%s %q is neither a GUID nor a domain such as contoso.onmicrosoft.com", names.tenant, cfg.TenantID))
	}
	switch {
	case cfg.ClientID == "":
		missing(names.client, "set it to the application (client) id of the service principal")
	case !guidRE.MatchString(cfg.ClientID):
		errs = append(errs, fmt.Errorf("%s %q is not a GUID: give the application (client) id, not its name", names.client, cfg.ClientID))
	}
	switch {
	case cfg.ClientSecret == "":
		missing(names.secret, "create a client secret for the service principal (managed identities are not supported)")
	default:
		if err := cloudapi.CheckPrintable(names.secret, cfg.ClientSecret); err != nil {
			errs = append(errs, err)
		} else if guidRE.MatchString(cfg.ClientSecret) {
			errs = append(errs, fmt.Errorf("%s looks like a GUID: that is the secret's id, give the secret's value", names.secret))
		}
	}
	switch {
	case cfg.SubscriptionID == "":
		missing(names.subscription, "set it to the id of the subscription that holds the DNS zones")
	case !guidRE.MatchString(cfg.SubscriptionID):
		errs = append(errs, fmt.Errorf("%s %q is not a GUID: give the subscription id, not its name", names.subscription, cfg.SubscriptionID))
	}
	switch {
	case cfg.ResourceGroup == "":
		missing(names.group, "set it to the resource group that holds the DNS zones")
	case !groupRE.MatchString(cfg.ResourceGroup) || strings.HasSuffix(cfg.ResourceGroup, "."):
		errs = append(errs, fmt.Errorf("%s %q is not a resource group name (1 to 90 letters, digits, _ - . ( ), not ending in a period)", names.group, cfg.ResourceGroup))
	}
	env := strings.ToLower(cfg.Environment)
	if env == "" {
		env = "public"
	}
	endpoints, ok := clouds[env]
	if !ok {
		errs = append(errs, fmt.Errorf("%s %q is not an Azure cloud: name public, usgovernment or china", names.environment, cfg.Environment))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	cfg.HTTPClient = nil
	p := &Provider{cfg: cfg, cloud: endpoints}
	p.api = &cloudapi.Client{
		HTTP:       client,
		Fetch:      p.fetchToken,
		ParseError: parseError,
		AuthHint:   fmt.Sprintf("check that the service principal %s has the DNS Zone Contributor role on the zone or resource group %q", cfg.ClientID, cfg.ResourceGroup),
		Redact:     p.redact,
	}
	return p, nil
}

// Provider is an Azure DNS provider; it implements dnsprovider.Provider,
// libdns.RecordGetter, libdns.RecordSetter and libdns.ZoneLister, and is
// safe for concurrent use. It writes TXT records only (what ACME challenges
// need); it reads every type. Errors are *dnsprovider.OpError values
// wrapping a *dnsprovider.StatusError for API errors. Formatting a Provider
// never shows its client secret.
type Provider struct {
	cfg   Config
	cloud cloud
	api   *cloudapi.Client
}

// ProviderName returns "azure".
func (p *Provider) ProviderName() string { return "azure" }

// String describes the provider without its client secret.
func (p Provider) String() string { return "azure.Provider{" + p.cfg.String() + "}" }

// GoString is String.
func (p Provider) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Provider) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue is how slog shows a Provider: without its client secret.
func (p Provider) LogValue() slog.Value { return p.cfg.LogValue() }

// redact removes the client secret from a text taken from an answer.
func (p *Provider) redact(s string) string {
	return strings.ReplaceAll(s, p.cfg.ClientSecret, "[redacted]")
}

var (
	_ dnsprovider.Provider = (*Provider)(nil)
	_ fmt.Formatter        = Config{}
	_ slog.LogValuer       = Provider{}
	_ fmt.Formatter        = Provider{}
)
