package dnsprovider

import (
	"fmt"
	"os"
	"strings"

	"github.com/certfleet/certfleet/internal/registry"
	"github.com/certfleet/certfleet/internal/secretenv"
)

// builtins maps the names of certfleet's own providers to the package that
// registers them, so that FromEnv can say which import is missing.
var builtins = map[string]string{
	"azure":          "github.com/certfleet/certfleet/dnsprovider/azure",
	"cloudflare":     "github.com/certfleet/certfleet/dnsprovider/cloudflare",
	"googleclouddns": "github.com/certfleet/certfleet/dnsprovider/googleclouddns",
	"rfc2136":        "github.com/certfleet/certfleet/dnsprovider/rfc2136",
	"route53":        "github.com/certfleet/certfleet/dnsprovider/route53",
}

var providers = registry.Registry[func(getenv func(string) string) (Provider, error)]{
	Func: "dnsprovider.Register", What: "provider", Key: "name",
}

// Register makes a provider constructible by name (the database/sql driver
// pattern); provider packages, certfleet's or anyone's, call it from their
// init function. Names are case-insensitive. fromEnv builds the provider from
// the settings that getenv returns (os.Getenv, or a test's map); it should
// read secrets with LookupEnv, validate every setting, and return an error
// naming the variable and the fix rather than fail later.
//
// Register never panics: registering a name twice, an empty name or a nil
// function makes FromEnv report the mistake for that name instead. The same
// rules hold for storage.Register.
func Register(name string, fromEnv func(getenv func(string) string) (Provider, error)) {
	providers.Register(name, fromEnv)
}

// Names returns the names of the registered providers, sorted.
func Names() []string {
	return providers.Names()
}

// FromEnv builds the named provider from the process environment (each
// secret NAME may also be given as a file path in NAME_FILE). The name of a
// built-in provider whose package is not linked into the program gives an
// error naming the import that adds it; any other unknown name gives an error
// listing the registered names.
func FromEnv(name string) (Provider, error) {
	return FromGetenv(name, os.Getenv)
}

// FromGetenv is FromEnv reading settings through getenv instead of the
// process environment (a nil getenv reads the process environment).
func FromGetenv(name string, getenv func(string) string) (Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	key := registry.Canonical(name)
	fromEnv, _, broken := providers.Lookup(key)
	switch {
	case broken != nil:
		return nil, fmt.Errorf("dnsprovider: %w", broken)
	case key == "":
		return nil, fmt.Errorf("dnsprovider: no DNS provider name given: name one of %s", known())
	case fromEnv == nil && builtins[key] != "":
		return nil, fmt.Errorf("dnsprovider: provider %q is not linked into this program: add import _ %q (or _ \"github.com/certfleet/certfleet/dnsprovider/all\" for every built-in provider)", key, builtins[key])
	case fromEnv == nil:
		return nil, fmt.Errorf("dnsprovider: unknown DNS provider %q: name one of %s, or link in the package that provides it (its init function calls dnsprovider.Register(%q, ...))", name, known(), key)
	}
	p, err := fromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("dnsprovider: %s: %w", key, err)
	}
	if orNil(p) == (nilProvider{}) {
		return nil, fmt.Errorf("dnsprovider: %s: the registered constructor returned no provider and no error", key)
	}
	return p, nil
}

// LookupEnv returns the setting name read through getenv (nil means
// os.Getenv), or, when name+"_FILE" is set instead, the contents of the file
// it names with trailing newlines removed: the convention of container
// secrets. Setting both is an error. An empty result with a nil error means
// unset. Errors name the variable, never the value. Providers' FromEnv
// functions read their secrets with it.
func LookupEnv(getenv func(string) string, name string) (string, error) {
	return secretenv.Lookup(getenv, name)
}

// known lists the registered names for an error message.
func known() string {
	names := Names()
	if len(names) == 0 {
		return "the registered providers (none are linked in: import _ \"github.com/certfleet/certfleet/dnsprovider/all\")"
	}
	return "the registered providers (" + strings.Join(names, ", ") + ")"
}
