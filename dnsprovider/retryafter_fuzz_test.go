package dnsprovider_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
)

// FuzzParseRetryAfter holds ParseRetryAfter to its promises for any header
// value and any clock: no panic, a wait between 0 and 24 hours, and exactly
// the given seconds for a plain number of seconds within that range.
//
//	go test -run '^$' -fuzz '^FuzzParseRetryAfter$' -fuzztime 30s ./dnsprovider/
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).Unix()
	for _, seed := range []string{
		"120", "0", "-5", " 7 ", "86401", "9223372036854775807", "99999999999999999999", "1.5", "0x10",
		"Tue, 01 Dec 2026 12:00:30 GMT", "Tuesday, 01-Dec-26 12:00:30 GMT", "Tue Dec  1 12:00:30 2026",
		"Mon, 30 Nov 2026 12:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "soon", "",
	} {
		f.Add(seed, now)
	}
	f.Fuzz(func(t *testing.T, value string, unix int64) {
		d := dnsprovider.ParseRetryAfter(value, time.Unix(unix, 0))
		if d < 0 || d > 24*time.Hour {
			t.Fatalf("ParseRetryAfter(%q) = %v: outside [0, 24h]", value, d)
		}
		if secs, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && secs > 0 && secs <= 86400 {
			if d != time.Duration(secs)*time.Second {
				t.Fatalf("ParseRetryAfter(%q) = %v, want %ds", value, d, secs)
			}
		}
	})
}
