package tlsauto

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSessionTicketSettingsAreValidatedWithDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   func(*Config)
		field string // "" when valid
		want  ticketSettings
	}{
		{"defaults", func(*Config) {}, "", ticketSettings{TicketsShared, 12 * time.Hour, 36 * time.Hour}},
		{"lifetime follows rotation", func(c *Config) { c.SessionTicketRotation = time.Hour }, "", ticketSettings{TicketsShared, time.Hour, 3 * time.Hour}},
		{"lifetime capped at 7 days", func(c *Config) { c.SessionTicketRotation = 5 * 24 * time.Hour }, "", ticketSettings{TicketsShared, 5 * 24 * time.Hour, 7 * 24 * time.Hour}},
		{"local", func(c *Config) { c.SessionTickets = TicketsLocal }, "", ticketSettings{TicketsLocal, 12 * time.Hour, 36 * time.Hour}},
		{"shortest", func(c *Config) { c.SessionTicketRotation, c.SessionTicketLifetime = time.Second, time.Second }, "", ticketSettings{TicketsShared, time.Second, time.Second}},
		{"unknown mode", func(c *Config) { c.SessionTickets = "sometimes" }, "SessionTickets", ticketSettings{}},
		{"rotation too short", func(c *Config) { c.SessionTicketRotation = 10 * time.Millisecond }, "SessionTicketRotation", ticketSettings{}},
		{"rotation negative", func(c *Config) { c.SessionTicketRotation = -time.Hour }, "SessionTicketRotation", ticketSettings{}},
		{"rotation too long", func(c *Config) { c.SessionTicketRotation = 8 * 24 * time.Hour }, "SessionTicketRotation", ticketSettings{}},
		{"lifetime negative", func(c *Config) { c.SessionTicketLifetime = -time.Hour }, "SessionTicketLifetime", ticketSettings{}},
		{"lifetime shorter than rotation", func(c *Config) { c.SessionTicketLifetime = time.Hour }, "SessionTicketLifetime", ticketSettings{}},
		{"lifetime too many keys", func(c *Config) { c.SessionTicketRotation, c.SessionTicketLifetime = time.Second, time.Minute }, "SessionTicketLifetime", ticketSettings{}},
		{"lifetime too long", func(c *Config) { c.SessionTicketRotation, c.SessionTicketLifetime = 24*time.Hour, 8*24*time.Hour }, "SessionTicketLifetime", ticketSettings{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.cfg(&c)
			s, err := c.validate()
			if tc.field == "" {
				if err != nil || s.tickets != tc.want {
					t.Fatalf("validate: %+v, %v; want %+v", s.tickets, err, tc.want)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("validate: %v, want a ConfigError for %s", err, tc.field)
			}
		})
	}
}

func TestTicketKeyNeverPrintsItsKey(t *testing.T) {
	k := ticketKey{created: time.Unix(1700000000, 0)}
	copy(k.key[:], "SENTINEL-TICKET-KEY-0123456789ab")
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{k, &k, []ticketKey{k}} {
			if out := fmt.Sprintf(f, v); containsSentinel(out) {
				t.Errorf("%s of %T shows the key: %s", f, v, out)
			}
		}
	}
	if _, err := decodeTicketKeys([]byte(`{"keys":[{"created":"2026-01-01T00:00:00Z","key":"U0VOVElORUwtVElDS0VULUtFWQ=="}]}`)); err == nil || containsSentinel(err.Error()) {
		t.Errorf("decoding a key of the wrong length: %v", err)
	}
}

func containsSentinel(s string) bool {
	for _, enc := range []string{"SENTINEL", fmt.Sprintf("%x", "SENTINEL"), "U0VOVElORUw"} {
		if strings.Contains(s, enc) {
			return true
		}
	}
	return false
}
