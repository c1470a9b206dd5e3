package nats

import (
	"fmt"
	"strconv"
	"strings"
)

// NATS KV keys are tokens of [-/_=.a-zA-Z0-9] separated by '.', with no
// empty token; certmagic keys hold any character ('*', ':', '@', '%',
// Unicode) in '/'-separated components. Each component becomes one token:
// letters, digits, '-' and '_' stay as they are, every other byte of its
// UTF-8 form becomes "=XX" (upper-case hex), so the mapping is reversible
// and "example.com" reads as "example=2Ecom". Because a directory maps to
// whole tokens, the subject filter "v.<dir>.>" matches exactly the keys
// below that directory: "a" never matches "ab/c".
//
// Key spaces inside a bucket:
//
//	v.<component>.<component>…  values
//	l.n<name>                   locks (the name as one escaped token)
//	c.<id>.<n>                  chunks of values too large for one message

// escape encodes s as one token (empty for an empty s).
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	return b.String()
}

// unescape reverses escape.
func unescape(tok string) (string, error) {
	if !strings.Contains(tok, "=") {
		return tok, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '=' {
			b.WriteByte(tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", fmt.Errorf("nats: key token %q has a truncated escape", tok)
		}
		c, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("nats: key token %q has a bad escape", tok)
		}
		b.WriteByte(byte(c))
		i += 2
	}
	return b.String(), nil
}

// valueSubject returns the KV key of the value at k (cleaned, non-empty).
func valueSubject(k string) string {
	comps := strings.Split(k, "/")
	for i, c := range comps {
		comps[i] = escape(c)
	}
	return "v." + strings.Join(comps, ".")
}

// dirFilter returns the KV key filter matching every value below k ("" is
// the root).
func dirFilter(k string) string {
	if k == "" {
		return "v.>"
	}
	return valueSubject(k) + ".>"
}

// keyOf returns the storage key of the KV key of a value.
func keyOf(subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, "v.")
	if !ok {
		return "", fmt.Errorf("nats: %q is not a value key", subject)
	}
	toks := strings.Split(rest, ".")
	for i, t := range toks {
		c, err := unescape(t)
		if err != nil {
			return "", err
		}
		toks[i] = c
	}
	return strings.Join(toks, "/"), nil
}

// lockSubject returns the KV key of the lock called name: one token, with a
// leading "n" so that the empty name has one too.
func lockSubject(name string) string { return "l.n" + escape(name) }

// chunkSubject returns the KV key of chunk n of a large value.
func chunkSubject(id string, n int) string { return fmt.Sprintf("c.%s.%d", id, n) }
