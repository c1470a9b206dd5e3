package file

import (
	"strings"
	"testing"
)

// FuzzKeyEncoding holds the key-to-path encoding to its promises for any
// key: no panic; every file name it makes is a portable name of at most
// maxName+3 bytes, well below the usual 255 (a-z, 0-9, - _ @ . % A-F, and ~
// only as a chunk's last byte; a chunk's leading dot escaped adds 2), never
// ".", "..", hidden or one of the storage's own names; and it
// decodes back to the component, so that no two keys share a path.
//
//	go test -run '^$' -fuzz '^FuzzKeyEncoding$' -fuzztime 30s ./storage/file/
func FuzzKeyEncoding(f *testing.F) {
	for _, seed := range []string{
		"certificates/acme-v02.api.letsencrypt.org-directory/example.com/example.com.crt",
		"issue_cert_*.example.com", "a/B/c", ".hidden/..", "%41", "~locks", "x~", "dns01/journal/0a_1b",
		strings.Repeat("a", 199) + "%", strings.Repeat("Z", 300), strings.Repeat(".", 401), "b\xffcher/\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		comps, err := splitKey(key)
		if err != nil {
			return
		}
		for _, comp := range comps {
			chunks := encodeComponent(comp)
			for i, c := range chunks {
				last := i == len(chunks)-1
				if c == "" || c == "." || c == ".." || strings.HasPrefix(c, ".") || internal(c) || len(c) > maxName+3 {
					t.Fatalf("component %q: chunk %d %q is not a usable file name", comp, i, c)
				}
				if isChunk(c) == last {
					t.Fatalf("component %q: chunk %d %q: only chunks before the last end in %q", comp, i, c, chunkSuffix)
				}
				body := strings.TrimSuffix(c, chunkSuffix)
				for j := 0; j < len(body); j++ {
					if b := body[j]; !keep(b, false) && b != '%' && !('A' <= b && b <= 'F') {
						t.Fatalf("component %q: chunk %q holds byte %q", comp, c, b)
					}
				}
			}
			joined := strings.TrimSuffix(strings.Join(chunks, ""), chunkSuffix)
			joined = strings.ReplaceAll(joined, chunkSuffix, "")
			if got, ok := decodeName(joined); !ok || got != comp {
				t.Fatalf("component %q encodes to %q, which decodes to %q (%t)", comp, chunks, got, ok)
			}
			if !validEncoding(comp, chunks) {
				t.Fatalf("component %q: validEncoding refuses its own encoding %q", comp, chunks)
			}
		}
	})
}
