package file

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestEncodeComponentIsReversibleAndSafe(t *testing.T) {
	comps := []string{
		"example.com", "wildcard_.example.com", "me@example.com", "acme-v02.api.letsencrypt.org-directory",
		"*", "a:b", "%", "%41", "A", "a", "~", ".", "..", ".hidden", "a/b", "\x00", "ключ", "u\u0308", "ü",
		strings.Repeat("x", maxName), strings.Repeat("x", maxName+1), strings.Repeat("x", 199) + "%",
		strings.Repeat("x", 200) + "..", strings.Repeat("x", 198) + "." + strings.Repeat("y", 300),
		strings.Repeat("é", 300), strings.Repeat("*", 1000),
	}
	seen := map[string]string{}
	for _, c := range comps {
		chunks := encodeComponent(c)
		for i, ch := range chunks {
			name := strings.TrimSuffix(ch, chunkSuffix)
			switch {
			case len(ch) > 255:
				t.Errorf("component %.20q: chunk %d is %d bytes, longer than a file name may be", c, i, len(ch))
			case ch == "." || ch == ".." || strings.HasPrefix(ch, "."):
				t.Errorf("component %.20q: chunk %d is %q", c, i, ch)
			case strings.ContainsAny(ch, "/\\") || strings.ContainsRune(name, '~'):
				t.Errorf("component %.20q: chunk %d %q has a separator or '~'", c, i, ch)
			case hasUpperLetterOutsideEscapes(ch):
				t.Errorf("component %.20q: chunk %d %q has an upper-case letter (case-insensitive file systems)", c, i, ch)
			}
			if (i < len(chunks)-1) != isChunk(ch) {
				t.Errorf("component %.20q: chunk %d %q: continuation marker wrong", c, i, ch)
			}
		}
		var joined strings.Builder
		for _, ch := range chunks {
			joined.WriteString(strings.TrimSuffix(ch, chunkSuffix))
		}
		got, ok := decodeName(joined.String())
		if !ok || got != c || !validEncoding(got, chunks) {
			t.Errorf("component %.20q: decodes to %.20q, %v", c, got, ok)
		}
		path := filepath.Join(chunks...)
		if prev, dup := seen[path]; dup {
			t.Errorf("components %.20q and %.20q share the path %q", prev, c, path)
		}
		seen[path] = c
	}
}

func hasUpperLetterOutsideEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			i += 2
			continue
		}
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func TestDecodeNameRejectsForeignNames(t *testing.T) {
	for _, name := range []string{"README", "a%zz", "a%4", "%", "x%2f", "Example.com"} {
		comp, ok := decodeName(name)
		if ok && validEncoding(comp, []string{name}) {
			t.Errorf("%q is accepted as an encoded component (%q)", name, comp)
		}
	}
}

func FuzzEncodeComponent(f *testing.F) {
	for _, s := range []string{"a", "*.example.com", strings.Repeat("%", 100), ".."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		chunks := encodeComponent(c)
		var joined strings.Builder
		for _, ch := range chunks {
			if len(ch) > 255 || ch == "." || ch == ".." || strings.ContainsRune(ch, '/') {
				t.Fatalf("bad chunk %q", ch)
			}
			joined.WriteString(strings.TrimSuffix(ch, chunkSuffix))
		}
		got, ok := decodeName(joined.String())
		if !ok || got != c {
			t.Fatalf("%q round-trips to %q", c, got)
		}
	})
}
