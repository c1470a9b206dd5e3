package tlsauto

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzNormalizeDomain holds domain normalization to its promises for any
// input: no panic; an accepted name is lower-case ASCII of at most 253
// characters, no IP address, not all-digits at its end, and normalizing it
// again gives it back unchanged.
//
//	go test -run '^$' -fuzz FuzzNormalizeDomain -fuzztime 30s ./tlsauto/
func FuzzNormalizeDomain(f *testing.F) {
	for _, seed := range []string{
		"example.com", "Example.COM.", "*.example.com", "bücher.example", "xn--bcher-kva.example",
		"www\u3002example\uff0ecom\u3002", "127.1", "0x7f.0.0.1", "1.2.3.04", "[::1]", "b\xffcher.example",
		"*.*.example.com", "a..b", strings.Repeat("a.", 130) + "com", "-a.example.com", "*.com",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		name, err := normalizeDomain(raw)
		if err != nil {
			return
		}
		if len(name) > 253 || name != strings.ToLower(name) || !isASCII(name) {
			t.Fatalf("%q normalized to %q: not lower-case ASCII of at most 253 characters", raw, name)
		}
		if _, err := netip.ParseAddr(strings.TrimPrefix(name, "*.")); err == nil {
			t.Fatalf("%q normalized to the IP address %q", raw, name)
		}
		labels := strings.Split(name, ".")
		if allDigits(labels[len(labels)-1]) {
			t.Fatalf("%q normalized to %q, whose last label is all digits", raw, name)
		}
		again, err := normalizeDomain(name)
		if err != nil || again != name {
			t.Fatalf("normalizing %q (from %q) again gave %q, %v", name, raw, again, err)
		}
	})
}
