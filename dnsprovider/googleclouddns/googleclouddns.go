// Package googleclouddns is certfleet's Google Cloud DNS provider, written
// on the Cloud DNS v1 REST API: a service-account key signs a JWT that
// Google's OAuth 2.0 token endpoint exchanges for an access token (reused
// until shortly before it expires), and each change to a record set is one
// atomic Cloud DNS change whose deletion must match the record set as it was
// read, so that concurrent writers (other members of a fleet, other tools)
// never overwrite each other's values: on a conflict the set is read again.
// API errors are dnsprovider.StatusError values (status, Google's reason,
// Retry-After) for dnsprovider.WithRetry; appends and deletes are
// idempotent; the key never appears in an error, log or formatted value.
//
// It does not use github.com/libdns/googleclouddns (v1.2.0): that library
// builds its API client inside an unexported field from Google's default
// endpoint (https://dns.googleapis.com/) and takes no HTTP client, so it
// cannot be tested against a fake on loopback; it also lists zones without
// the caller's context, and replaces record sets with a create-or-patch that
// loses values written concurrently by another process.
//
// Importing the package registers the provider as "googleclouddns":
//
//	import _ "github.com/certfleet/certfleet/dnsprovider/googleclouddns"
//
//	p, err := dnsprovider.FromEnv("googleclouddns")
//
// or, without the environment:
//
//	p, err := googleclouddns.New(googleclouddns.Config{ServiceAccountJSON: key})
//
// Environment: the service-account key comes from GCE_SERVICE_ACCOUNT (the
// JSON itself) or GCE_SERVICE_ACCOUNT_FILE (a path to it), else from the
// file GOOGLE_APPLICATION_CREDENTIALS names; the project from GCE_PROJECT,
// else GOOGLE_CLOUD_PROJECT, else the key's project_id. The service account
// needs the DNS Administrator role (roles/dns.admin) on the project, or
// dns.managedZones.list, dns.resourceRecordSets.list and dns.changes.create.
// Only service-account keys are accepted: not gcloud user credentials, the
// metadata server or workload identity federation.
package googleclouddns

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi"
)

// Environment variables read by FromEnv. GCE_SERVICE_ACCOUNT may also be
// given as a file path in GCE_SERVICE_ACCOUNT_FILE.
const (
	EnvApplicationCredentials = "GOOGLE_APPLICATION_CREDENTIALS"
	EnvServiceAccount         = "GCE_SERVICE_ACCOUNT"
	EnvProject                = "GCE_PROJECT"
	EnvCloudProject           = "GOOGLE_CLOUD_PROJECT"
)

// Google's endpoints. Requests go nowhere else.
const (
	apiHost         = "dns.googleapis.com"
	apiBase         = "https://" + apiHost + "/dns/v1/projects/"
	DefaultTokenURI = "https://oauth2.googleapis.com/token" // the token endpoint of keys that name none
	scope           = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
)

func init() {
	dnsprovider.Register("googleclouddns", FromEnv)
}

// HTTPClient sends HTTP requests; *http.Client is one.
type HTTPClient = cloudapi.HTTPClient

// Config configures a Google Cloud DNS provider. Formatting a Config (fmt,
// slog) never shows the key.
type Config struct {
	// ServiceAccountJSON is a service-account key as Google's console
	// downloads it (JSON, "type": "service_account"). Required.
	ServiceAccountJSON []byte

	// Project is the id of the project that holds the managed zones.
	// Default: the key's project_id.
	Project string

	// HTTPClient sends the API and token requests. Nil means an http.Client
	// with a 30 s timeout. Tests route requests to a fake API through it.
	HTTPClient HTTPClient
}

// String describes the Config without its key.
func (c Config) String() string {
	return fmt.Sprintf("googleclouddns.Config{ServiceAccountJSON: %s, Project: %q}", cloudapi.Redacted(string(c.ServiceAccountJSON)), c.Project)
}

// GoString is String: %#v does not show the key either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb, so that no verb shows the key.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without its key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("service_account_json", cloudapi.Redacted(string(c.ServiceAccountJSON))), slog.String("project", c.Project))
}

// FromEnv builds a provider from the variables listed in the package
// documentation as getenv returns them; a nil getenv reads the process
// environment.
func FromEnv(getenv func(string) string) (dnsprovider.Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	key, err := dnsprovider.LookupEnv(getenv, EnvServiceAccount)
	if err != nil {
		return nil, err
	}
	names := fieldNames{key: EnvServiceAccount, project: EnvProject}
	if key == "" {
		path := getenv(EnvApplicationCredentials)
		if path == "" {
			return nil, fmt.Errorf("no Google service-account key: set %s to the path of a service-account JSON key (or %s / %s_FILE to the key itself); the service account needs the DNS Administrator role",
				EnvApplicationCredentials, EnvServiceAccount, EnvServiceAccount)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s: reading %q: %w", EnvApplicationCredentials, path, err)
		}
		key = string(b)
		names.key = fmt.Sprintf("%s (%s)", EnvApplicationCredentials, path)
	} else if getenv(EnvServiceAccount+"_FILE") != "" {
		names.key = EnvServiceAccount + "_FILE"
	}
	project := getenv(EnvProject)
	if project == "" && getenv(EnvCloudProject) != "" {
		project, names.project = getenv(EnvCloudProject), EnvCloudProject
	}
	return newProvider(Config{ServiceAccountJSON: []byte(key), Project: project}, names)
}

// New returns a Google Cloud DNS provider after checking cfg: the key must
// be a service-account key with an RSA private key, the project a valid
// project id. No network call is made.
func New(cfg Config) (dnsprovider.Provider, error) {
	return newProvider(cfg, fieldNames{key: "ServiceAccountJSON", project: "Project"})
}

// fieldNames names the settings in errors: Config fields for New, variables
// for FromEnv.
type fieldNames struct{ key, project string }

// serviceAccount is the part of a key file that is used.
type serviceAccount struct {
	Type           string `json:"type"`
	ProjectID      string `json:"project_id"`
	PrivateKeyID   string `json:"private_key_id"`
	PrivateKey     string `json:"private_key"`
	ClientEmail    string `json:"client_email"`
	TokenURI       string `json:"token_uri"`
	UniverseDomain string `json:"universe_domain"`
}

// projectRE matches project ids, domain-scoped ones (example.com:id)
// included.
var projectRE = regexp.MustCompile(`^([a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// parseKey reads a service-account key; errors never quote it.
func parseKey(field string, raw []byte) (serviceAccount, *rsa.PrivateKey, error) {
	var sa serviceAccount
	if len(strings.TrimSpace(string(raw))) == 0 {
		return sa, nil, fmt.Errorf("%s is empty: give the JSON key of a service account with the DNS Administrator role", field)
	}
	if err := json.Unmarshal(raw, &sa); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return sa, nil, fmt.Errorf("%s is not valid JSON (syntax error at byte %d): give the service-account key file as Google's console downloads it", field, se.Offset)
		}
		return sa, nil, fmt.Errorf("%s is not a service-account key (a JSON object with string fields): give the key file as Google's console downloads it", field)
	}
	switch sa.Type {
	case "service_account":
	case "authorized_user":
		return sa, nil, fmt.Errorf("%s holds gcloud user credentials (type authorized_user), not a service-account key: create a key for a service account with the DNS Administrator role", field)
	case "external_account", "impersonated_service_account", "external_account_authorized_user":
		return sa, nil, fmt.Errorf("%s holds %s credentials, which certfleet does not support: create a key for a service account with the DNS Administrator role", field, sa.Type)
	default:
		return sa, nil, fmt.Errorf("%s has type %q, not service_account: give a service-account key", field, sa.Type)
	}
	if sa.ClientEmail == "" || strings.ContainsAny(sa.ClientEmail, " \t\r\n") || !strings.Contains(sa.ClientEmail, "@") {
		return sa, nil, fmt.Errorf("%s has no valid client_email: give the key file unchanged", field)
	}
	if ud := sa.UniverseDomain; ud != "" && ud != "googleapis.com" {
		return sa, nil, fmt.Errorf("%s is for the universe domain %q: certfleet supports googleapis.com only", field, ud)
	}
	if sa.TokenURI == "" {
		sa.TokenURI = DefaultTokenURI
	}
	if u, err := url.Parse(sa.TokenURI); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return sa, nil, fmt.Errorf("%s has token_uri %q: it must be an https URL (Google's is %s)", field, sa.TokenURI, DefaultTokenURI)
	}
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	if block == nil {
		return sa, nil, fmt.Errorf("%s has no PEM private_key: give the key file unchanged", field)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return sa, nil, fmt.Errorf("%s has a private_key of PEM type %q, not PRIVATE KEY", field, block.Type)
	}
	if err != nil {
		// x509's errors describe the structure, never the key bytes.
		return sa, nil, fmt.Errorf("%s has a private_key that does not parse: %w", field, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return sa, nil, fmt.Errorf("%s has a %T private_key: Google service-account keys are RSA", field, key)
	}
	return sa, rk, nil
}

func newProvider(cfg Config, names fieldNames) (*Provider, error) {
	sa, key, err := parseKey(names.key, cfg.ServiceAccountJSON)
	if err != nil {
		return nil, err
	}
	project := cfg.Project
	if project == "" {
		project = sa.ProjectID
		names.project = names.key + " project_id"
		if project == "" {
			return nil, fmt.Errorf("no Google Cloud project: the key has no project_id, set %s", EnvProject)
		}
	}
	if !projectRE.MatchString(project) {
		return nil, fmt.Errorf("%s %q is not a Google Cloud project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter)", names.project, project)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	p := &Provider{
		project:  project,
		email:    sa.ClientEmail,
		tokenURI: sa.TokenURI,
		signer:   signer{key: key, keyID: sa.PrivateKeyID},
		zones:    &zoneCache{m: make(map[string]zoneEntry)},
	}
	p.api = &cloudapi.Client{
		HTTP:       client,
		Fetch:      p.fetchToken,
		ParseError: parseError,
		AuthHint:   fmt.Sprintf("check that the service account %s has the DNS Administrator role (roles/dns.admin) in project %q", sa.ClientEmail, project),
	}
	return p, nil
}

// Provider is a Google Cloud DNS provider; it implements
// dnsprovider.Provider, libdns.RecordGetter, libdns.RecordSetter and
// libdns.ZoneLister, and is safe for concurrent use. Errors are
// *dnsprovider.OpError values wrapping a *dnsprovider.StatusError for API
// errors. Formatting a Provider or a copy of one never shows its key: the
// key is held only behind a pointer, and the methods that format it have
// value receivers.
type Provider struct {
	project  string
	email    string
	tokenURI string
	signer   signer
	api      *cloudapi.Client
	zones    *zoneCache
}

// zoneCache maps zone FQDNs to their managed zones.
type zoneCache struct {
	mu sync.Mutex
	m  map[string]zoneEntry
}

// ProviderName returns "googleclouddns".
func (p *Provider) ProviderName() string { return "googleclouddns" }

// String describes the provider without its key.
func (p Provider) String() string {
	return fmt.Sprintf("googleclouddns.Provider{Project: %q, ServiceAccount: %q, ServiceAccountJSON: [redacted]}", p.project, p.email)
}

// GoString is String.
func (p Provider) GoString() string { return p.String() }

// Format writes String for every verb.
func (p Provider) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(p.String())) }

// LogValue is how slog shows a Provider: without its key.
func (p Provider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("project", p.project), slog.String("service_account", p.email), slog.String("service_account_json", "[redacted]"))
}

var (
	_ dnsprovider.Provider = (*Provider)(nil)
	_ fmt.Formatter        = Config{}
	_ slog.LogValuer       = Provider{}
	_ fmt.Formatter        = Provider{}
)
