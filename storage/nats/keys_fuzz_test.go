package nats

import (
	"strings"
	"testing"
)

// FuzzKeyEncoding holds the mapping of storage keys to NATS KV keys to its
// promises for any key with no empty component: no panic; the KV key is
// "v." and one token per component, each of [-_=a-zA-Z0-9] and never
// empty (NATS refuses empty tokens and reads '.', '*' and '>' as syntax);
// and it maps back to the key, so that no two keys share a KV key. Lock
// names map to one token the same way.
//
//	go test -run '^$' -fuzz '^FuzzKeyEncoding$' -fuzztime 30s ./storage/nats/
func FuzzKeyEncoding(f *testing.F) {
	for _, seed := range []string{
		"certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.crt",
		"issue_cert_*.example.com", "a/>/b", "=41", "b\xffcher", "x/ /y", "\x00",
	} {
		f.Add(seed)
	}
	token := func(t *testing.T, key, tok string) {
		t.Helper()
		if tok == "" {
			t.Fatalf("%q: empty token", key)
		}
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
				t.Fatalf("%q: token %q holds %q", key, tok, c)
			}
		}
	}
	f.Fuzz(func(t *testing.T, key string) {
		lock := lockSubject(key)
		token(t, key, strings.TrimPrefix(lock, "l."))
		if got, err := unescape(strings.TrimPrefix(lock, "l.n")); err != nil || got != key {
			t.Fatalf("lock %q: token %q unescapes to %q, %v", key, lock, got, err)
		}
		if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
			return // not a clean key: the storage refuses or trims it first
		}
		subj := valueSubject(key)
		rest, ok := strings.CutPrefix(subj, "v.")
		if !ok {
			t.Fatalf("valueSubject(%q) = %q: no v. prefix", key, subj)
		}
		for _, tok := range strings.Split(rest, ".") {
			token(t, key, tok)
		}
		if got, err := keyOf(subj); err != nil || got != key {
			t.Fatalf("keyOf(valueSubject(%q)) = %q, %v", key, got, err)
		}
	})
}
