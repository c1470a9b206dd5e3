package nats

import (
	"regexp"
	"strings"
	"testing"
)

// validKey is the rule nats.go applies to KV keys.
var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func TestKeyEncodingIsValidAndReversible(t *testing.T) {
	for _, k := range []string{
		"certificates/acme-v02.api.letsencrypt.org-directory/*.example.com/*.example.com.crt",
		"a:b/me@example.com/a%2Ab/a=3Db", "ключ/名前/u\u0308/😀", strings.Repeat("é", 300), "a..b/.a/a.",
	} {
		s := valueSubject(k)
		if !validKey.MatchString(s) || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
			t.Errorf("valueSubject(%q) = %q, not a valid NATS KV key", k, s)
		}
		back, err := keyOf(s)
		if err != nil || back != k {
			t.Errorf("keyOf(valueSubject(%q)) = %q, %v", k, back, err)
		}
	}
	if lockSubject("") == lockSubject("n") || !validKey.MatchString(lockSubject("")) {
		t.Error("lock names collide or the empty name is invalid")
	}
}

func TestDirFilterMatchesWholeComponentsOnly(t *testing.T) {
	f := dirFilter("a")
	match := func(subject string) bool { return strings.HasPrefix(subject, strings.TrimSuffix(f, ">")) }
	if !match(valueSubject("a/b")) || match(valueSubject("ab/c")) || match(valueSubject("a.b/c")) {
		t.Errorf("filter %q matches the wrong keys", f)
	}
}
