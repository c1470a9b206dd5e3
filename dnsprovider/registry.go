package dnsprovider

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/certfleet/certfleet/internal/secretenv"
)

// builtins maps the names of certfleet's own providers to the package that
// registers them, so that FromEnv can say which import is missing.
var builtins = map[string]string{
	"cloudflare": "github.com/certfleet/certfleet/dnsprovider/cloudflare",
	"route53":    "github.com/certfleet/certfleet/dnsprovider/route53",
}

var registry struct {
	mu     sync.RWMutex
	byName map[string]func(secretenv.Getenv) (Provider, error)
	broken map[string]error // names registered badly: reported by FromEnv
}

// Register makes a provider constructible by name (the database/sql driver
// pattern); provider packages call it from their init function. Names are
// case-insensitive. fromEnv builds the provider from the settings that getenv
// returns; it must validate them and return an error naming the variable
// and the fix rather than fail later.
//
// Register never panics: registering a name twice, an empty name or a nil
// function makes FromEnv report the mistake for that name instead.
func Register(name string, fromEnv func(getenv secretenv.Getenv) (Provider, error)) {
	key := strings.ToLower(strings.TrimSpace(name))
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.byName == nil {
		registry.byName = make(map[string]func(secretenv.Getenv) (Provider, error))
		registry.broken = make(map[string]error)
	}
	switch {
	case key == "":
		registry.broken[key] = errors.New("dnsprovider.Register was called with an empty name")
	case fromEnv == nil:
		registry.broken[key] = fmt.Errorf("dnsprovider.Register(%q) was called with a nil constructor", name)
	case registry.byName[key] != nil:
		registry.broken[key] = fmt.Errorf("provider %q is registered twice: two imported packages call dnsprovider.Register with that name", key)
	default:
		registry.byName[key] = fromEnv
	}
}

// Names returns the names of the registered providers, sorted.
func Names() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	names := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// FromEnv builds the named provider from the process environment (each
// secret NAME may also be given as a file path in NAME_FILE). The name of a
// built-in provider whose package is not linked into the program gives an
// error naming the import that adds it; any other unknown name gives an error
// listing the registered names.
func FromEnv(name string) (Provider, error) {
	return FromGetenv(name, secretenv.OS)
}

// FromGetenv is FromEnv reading settings through getenv instead of the
// process environment (a nil getenv reads the process environment).
func FromGetenv(name string, getenv secretenv.Getenv) (Provider, error) {
	if getenv == nil {
		getenv = secretenv.OS
	}
	key := strings.ToLower(strings.TrimSpace(name))
	registry.mu.RLock()
	fromEnv := registry.byName[key]
	broken := registry.broken[key]
	registry.mu.RUnlock()
	switch {
	case broken != nil:
		return nil, fmt.Errorf("dnsprovider: %w", broken)
	case key == "":
		return nil, fmt.Errorf("dnsprovider: no DNS provider name given: name one of %s", known())
	case fromEnv == nil && builtins[key] != "":
		return nil, fmt.Errorf("dnsprovider: provider %q is not linked into this program: add import _ %q (or _ \"github.com/certfleet/certfleet/dnsprovider/all\" for every built-in provider)", key, builtins[key])
	case fromEnv == nil:
		return nil, fmt.Errorf("dnsprovider: unknown DNS provider %q: name one of %s, or register it with dnsprovider.Register", name, known())
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

// known lists the registered names for an error message.
func known() string {
	names := Names()
	if len(names) == 0 {
		return "the registered providers (none are linked in: import _ \"github.com/certfleet/certfleet/dnsprovider/all\")"
	}
	return "the registered providers (" + strings.Join(names, ", ") + ")"
}
