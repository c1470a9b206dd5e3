// Package secrettest checks that values holding secrets never show them:
// it renders a value every way a program might print it (fmt with every
// verb, slog's text and JSON handlers, errors) and looks for a secret, or
// its hex, base64 or byte-list encodings, in each rendering.
//
//	secrettest.Check(t, "cloudflare.Config", cfg, token)
package secrettest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// Verbs are the fmt verbs every value is formatted with.
var Verbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %[1]v"}

// Renderings returns every rendering of v that Check searches, by how it
// was made. slog's JSON handler marshals a struct holding v with
// encoding/json, so v must redact itself there too (MarshalJSON).
func Renderings(v any) map[string]string {
	out := map[string]string{}
	for _, verb := range Verbs {
		out["fmt "+verb] = fmt.Sprintf(verb, v)
		out["fmt "+verb+" of a pointer"] = fmt.Sprintf(verb, &v)
		out["fmt "+verb+" in a struct"] = fmt.Sprintf(verb, struct{ V any }{v})
		out["error "+verb] = fmt.Errorf("doing something with "+verb+": %w", v, errSentinelFree).Error()
	}
	out["fmt Sprint"] = fmt.Sprint(v)
	out["fmt Sprintln"] = fmt.Sprintln(v)
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		log := slog.New(h(&b))
		log.Info("value", "v", v)
		log.Info("group", slog.Group("g", slog.Any("v", v)))
		log.Info("nested", "s", struct{ V any }{v})
		log.With("v", v).Info("with")
		log.Info("error", "err", fmt.Errorf("failed: %v", v))
		out["slog "+name] = b.String()
	}
	return out
}

var errSentinelFree = fmt.Errorf("cause")

// Encodings returns the forms in which secret could leak: itself, hex
// (lower and upper case, as %x and %X print a string or a byte slice),
// base64, and the decimal byte list that %v prints for a []byte.
func Encodings(secret string) []string {
	b := []byte(secret)
	return []string{
		secret,
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b),
		strings.Trim(fmt.Sprint(b), "[]"),
		strings.Trim(fmt.Sprintf("% x", b), " "),
	}
}

// Check fails t for each rendering of v (named what) that contains one of
// secrets in any of its Encodings.
func Check(t testing.TB, what string, v any, secrets ...string) {
	t.Helper()
	for how, text := range Renderings(v) {
		for _, secret := range secrets {
			if secret == "" {
				t.Fatalf("secrettest.Check(%s): an empty secret matches everything", what)
			}
			for _, enc := range Encodings(secret) {
				if strings.Contains(text, enc) {
					t.Errorf("%s: %s shows a secret (as %q):\n%s", what, how, enc, text)
				}
			}
		}
	}
}

// URLPassword returns the password of the URL raw, when there is one that
// an error could only show by leaking it: url.Parse finds it, it is at
// least 6 letters and digits (so that it cannot turn up by chance or
// through escaping), and it occurs in raw exactly once. Fuzz targets use
// it to check that errors about a URL never show its password.
func URLPassword(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "", false
	}
	pw, ok := u.User.Password()
	if !ok || len(pw) < 6 || strings.Count(raw, pw) != 1 {
		return "", false
	}
	for _, r := range pw {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return "", false
		}
	}
	return pw, true
}
