package dnsprovider

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// envPrefixRE is what a variable prefix in a route may be.
var envPrefixRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// RoutesFromEnv builds a Route from its environment form, a comma-separated
// list of zone=provider or zone=provider:PREFIX:
//
//	example.com=cloudflare,example.org=route53:ORG_,example.net=cloudflare:NET_
//
// Each provider is built by name as FromGetenv does, reading its settings
// through getenv (nil: the process environment). With a PREFIX, it reads
// each of its variables under the prefix instead — ORG_AWS_ACCESS_KEY_ID,
// NET_CLOUDFLARE_API_TOKEN, NET_CLOUDFLARE_API_TOKEN_FILE — so that two
// accounts of one provider can be used side by side. Routes with the same
// provider and prefix share one provider. Settings that a provider's own
// libraries read from the process environment themselves (the rest of the
// AWS SDK's chain: shared config files, endpoints) are not prefixed.
//
// Errors name the route (by its position and text) and what is wrong; every
// route is checked, and all problems are reported at once.
func RoutesFromEnv(value string, getenv func(string) string) (Provider, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	type key struct{ name, prefix string }
	built := map[key]Provider{}
	failed := map[key]bool{}
	routes := map[string]Provider{}
	var errs []error
	n := 0
	for item := range strings.SplitSeq(value, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		n++
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("route %d (%q): %s", n, item, fmt.Sprintf(format, args...)))
		}
		zone, target, ok := strings.Cut(item, "=")
		zone, target = strings.TrimSpace(zone), strings.TrimSpace(target)
		if !ok || zone == "" || target == "" {
			bad("want zone=provider or zone=provider:PREFIX, such as example.org=route53:ORG_")
			continue
		}
		name, prefix, _ := strings.Cut(target, ":")
		name, prefix = strings.TrimSpace(name), strings.TrimSpace(prefix)
		if strings.Contains(target, ":") && !envPrefixRE.MatchString(prefix) {
			bad("the variable prefix %q is not letters, digits and underscores (such as ORG_)", prefix)
			continue
		}
		if _, dup := routes[canonical(zone)]; dup {
			bad("zone %s has a route already: give each zone one route", canonical(zone))
			continue
		}
		k := key{strings.ToLower(name), prefix}
		p, ok := built[k]
		if !ok && !failed[k] {
			var err error
			if p, err = FromGetenv(name, prefixed(getenv, prefix)); err != nil {
				failed[k] = true
				if prefix != "" {
					err = fmt.Errorf("%w (its variables are read with the prefix %s)", err, prefix)
				}
				bad("%v", err)
				continue
			}
			built[k] = p
		}
		if p == nil {
			continue // its error is reported once, with the first route that named it
		}
		routes[canonical(zone)] = p
	}
	if n == 0 {
		errs = append(errs, errors.New("no routes: list zone=provider pairs, such as example.com=cloudflare,example.org=route53:ORG_"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return Route(routes)
}

// prefixed returns getenv reading every variable under prefix.
func prefixed(getenv func(string) string, prefix string) func(string) string {
	if prefix == "" {
		return getenv
	}
	return func(name string) string { return getenv(prefix + name) }
}
