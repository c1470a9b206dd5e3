package encrypt

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/certfleet/certfleet/internal/secretenv"
)

// EnvKeys is the environment variable KeysFromEnv reads: comma-separated
// base64 keys, the writing key first. EnvKeys+"_FILE" may name a file holding
// the same text instead.
const EnvKeys = "CERTFLEET_STORAGE_KEYS"

// KeysFromEnv reads the encryption keys from CERTFLEET_STORAGE_KEYS or the
// file named by CERTFLEET_STORAGE_KEYS_FILE: base64 (standard or URL
// alphabet, padded or not) keys of KeySize bytes, separated by commas or new
// lines, the key for new writes first. getenv looks variables up; nil means
// the process environment. When neither variable is set it returns no keys
// and no error: encryption is off unless the caller requires it. Errors name
// the position of a bad key, never its contents.
func KeysFromEnv(getenv func(string) string) (Keys, error) {
	v, err := secretenv.Lookup(getenv, EnvKeys)
	if err != nil {
		return nil, fmt.Errorf("encryption keys: %w", err)
	}
	if v == "" {
		return nil, nil
	}
	return ParseKeys(v)
}

// ParseKeys parses keys as KeysFromEnv reads them from its variable.
func ParseKeys(text string) (Keys, error) {
	var keys Keys
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, err := decodeKey(f)
		if err != nil {
			return nil, fmt.Errorf("%s: key #%d is not valid base64: generate keys with `openssl rand -base64 32`", EnvKeys, i+1)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("%s: key #%d decodes to %d bytes, want %d: generate keys with `openssl rand -base64 32`", EnvKeys, i+1, len(k), KeySize)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no keys: set comma-separated base64 keys, generated with `openssl rand -base64 32`", EnvKeys)
	}
	return keys, nil
}

// Keys are encryption keys, the one for new writes first. Formatting Keys
// (fmt, with any verb, or slog) shows how many there are and their KeyIDs,
// never the keys.
type Keys [][]byte

// String describes k by its key ids.
func (k Keys) String() string {
	ids := make([]string, len(k))
	for i, key := range k {
		id, err := KeyID(key)
		if err != nil {
			id = "invalid"
		}
		ids[i] = id
	}
	return fmt.Sprintf("%d keys [%s] (redacted)", len(k), strings.Join(ids, " "))
}

// GoString is String, for %#v.
func (k Keys) GoString() string { return k.String() }

// MarshalJSON writes String as a JSON string, so that a Keys inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (k Keys) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// Format writes String for every verb.
func (k Keys) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue is String, for slog.
func (k Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

func decodeKey(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		k, err := enc.DecodeString(s)
		if err == nil {
			return k, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}
