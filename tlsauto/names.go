package tlsauto

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// normalizeNames validates the names a Manager is asked to manage (field
// says where they come from: "Domains") and returns them in the form
// certificates carry: lower-case ASCII (IDNs in punycode), no trailing dot.
// Each error names the offending entry.
func normalizeNames(field string, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, invalid(field, "at least one domain name is required")
	}
	out := make([]string, 0, len(names))
	seen := make(map[string]int, len(names))
	for i, raw := range names {
		name, err := normalizeDomain(raw)
		if err != nil {
			return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "%q: %w", raw, err)
		}
		if j, dup := seen[name]; dup {
			return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "%q: same name as %s[%d]; list each name once", raw, field, j)
		}
		seen[name] = i
		out = append(out, name)
	}
	return out, nil
}

// normalizeDomain checks one name; see normalizeDomains.
func normalizeDomain(raw string) (string, error) {
	if strings.TrimSpace(raw) != raw {
		return "", fmt.Errorf("surrounding white space: remove it")
	}
	name := strings.TrimSuffix(raw, ".")
	if name == "" {
		return "", fmt.Errorf("empty name")
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return "", fmt.Errorf("IP addresses cannot be validated over DNS-01: use a DNS name")
	}
	wildcard := false
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		wildcard, name = true, rest
	}
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("a wildcard must be the whole leftmost label, as in *.example.com")
	}
	// Plain ASCII labels get our own, more specific messages first.
	for _, l := range strings.Split(name, ".") {
		if isASCII(l) {
			if err := checkLabel(strings.ToLower(l)); err != nil {
				return "", err
			}
		}
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("not a valid domain name: %w", err)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > 253 || wildcard && len(ascii) > 251 {
		return "", fmt.Errorf("longer than 253 characters")
	}
	labels := strings.Split(ascii, ".")
	switch {
	case wildcard && len(labels) < 2:
		return "", fmt.Errorf("a wildcard needs at least two labels after it, as in *.example.com")
	case len(labels) < 2:
		return "", fmt.Errorf("a single-label name has no DNS zone to validate it in: use a fully qualified name")
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", err
		}
	}
	if _, err := netip.ParseAddr(ascii); err == nil {
		return "", fmt.Errorf("IP addresses cannot be validated over DNS-01: use a DNS name")
	}
	if wildcard {
		return "*." + ascii, nil
	}
	return ascii, nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty label (two dots in a row, or a leading dot)")
	case len(l) > 63:
		return fmt.Errorf("label %q is longer than 63 characters", l[:20]+"…")
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has the character %q: only letters, digits and hyphens are allowed", l, c)
		}
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
