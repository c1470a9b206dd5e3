package file

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Keys map onto paths below the storage directory, one directory level per
// key component. Each component is encoded so that every key has exactly one
// valid, portable path and no two keys share one:
//
//   - a-z, 0-9, '-', '_', '@' and '.' (except as the first byte) are kept, so
//     certmagic's usual keys stay readable on disk;
//   - every other byte, including upper-case letters (case-insensitive file
//     systems) and '%', becomes %XX;
//   - an encoded component longer than maxName bytes is split into chunks;
//     every chunk but the last names a directory and ends in '~'.
//
// '~' never occurs in an encoded component, so the storage's own files —
// temporary files and the lock directory, which start with '~' — and
// continuation directories, which end with it, never clash with a key.
const maxName = 200

const (
	lockDirName = "~locks"
	tempPrefix  = "~tmp-"
	chunkSuffix = "~"
)

// splitKey returns key's components, or an error if key is empty or has an
// empty component.
func splitKey(key string) ([]string, error) {
	if key == "" {
		return nil, fmt.Errorf("key is empty")
	}
	parts := strings.Split(key, "/")
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("key %q has an empty path component: keys have no leading, trailing or double slashes", key)
		}
	}
	return parts, nil
}

func keep(c byte, first bool) bool {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '@':
		return true
	case c == '.':
		return !first
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

// encodeComponent returns the file names (one or more chunks) for one key
// component.
func encodeComponent(comp string) []string {
	var b strings.Builder
	for i := 0; i < len(comp); i++ {
		c := comp[i]
		if keep(c, i == 0) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	enc := b.String()
	if len(enc) <= maxName {
		return []string{enc}
	}
	var chunks []string
	for len(enc) > maxName {
		n := maxName
		// Never split an escape.
		if i := strings.LastIndexByte(enc[n-2:n], '%'); i >= 0 {
			n = n - 2 + i
		}
		chunks = append(chunks, enc[:n])
		enc = enc[n:]
	}
	chunks = append(chunks, enc)
	for i := range chunks {
		// A chunk must not be "." or "..", nor hidden.
		if rest, ok := strings.CutPrefix(chunks[i], "."); ok {
			chunks[i] = "%2E" + rest
		}
		if i < len(chunks)-1 {
			chunks[i] += chunkSuffix
		}
	}
	return chunks
}

// decodeName turns an encoded name (a whole component, or chunks joined)
// back into the component. ok is false for names this storage did not write.
func decodeName(name string) (comp string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", false
		}
		hi, lo := unhex(name[i+1]), unhex(name[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// keyPath returns the path of key's file or directory below root.
func keyPath(root string, comps []string) string {
	elems := []string{root}
	for _, c := range comps {
		elems = append(elems, encodeComponent(c)...)
	}
	return filepath.Join(elems...)
}

// isChunk reports whether a directory entry is a continuation directory of a
// long component.
func isChunk(name string) bool {
	return strings.HasSuffix(name, chunkSuffix) && !strings.HasPrefix(name, "~")
}

// internal reports whether a directory entry belongs to the storage itself.
func internal(name string) bool {
	return strings.HasPrefix(name, "~")
}

// validEncoding reports whether the chunks of a component are exactly what
// encodeComponent makes of it, so that foreign files are ignored.
func validEncoding(comp string, chunks []string) bool {
	want := encodeComponent(comp)
	if len(want) != len(chunks) {
		return false
	}
	for i := range want {
		if want[i] != chunks[i] {
			return false
		}
	}
	return true
}
