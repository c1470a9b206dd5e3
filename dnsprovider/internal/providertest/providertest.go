// Package providertest holds the test helpers and checks that certfleet's
// DNS provider packages share: each provider's tests drive its fake API
// (internal/testacme/apifake) the same way, so that a behaviour every
// provider promises (normalised zone names, idempotent appends, deletes that
// keep the other values of a record set, permanent errors that fail fast,
// secrets that never show) is checked by one piece of code.
//
// It is imported by tests only; it fails the test it is given rather than
// returning errors.
package providertest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
)

// TXT returns a TXT record at name, relative to its zone, with the
// two-minute TTL the tests write challenge records with.
func TXT(name, text string) libdns.TXT {
	return libdns.TXT{Name: name, Text: text, TTL: 2 * time.Minute}
}

// Texts returns the sorted values of the TXT records at name (relative,
// "@" for the apex) in zone, as g gets them. It fails t if GetRecords fails.
func Texts(t testing.TB, g libdns.RecordGetter, zone, name string) []string {
	t.Helper()
	recs, err := g.GetRecords(context.Background(), zone)
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	return apifake.TXTValues(recs, name)
}

// WriteFile writes content to a new file of a temporary directory and
// returns its path, for the NAME_FILE form of a secret's variable.
func WriteFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// With returns a copy of env with key set to value, or without key when
// value is empty, so that a table of cases can each change one variable of
// a good environment.
func With(env map[string]string, key, value string) map[string]string {
	out := maps.Clone(env)
	if out == nil {
		out = make(map[string]string)
	}
	if value == "" {
		delete(out, key)
	} else {
		out[key] = value
	}
	return out
}

// Start starts a fake API over a new apifake.Memory holding zones, with
// start (an apifake constructor given the fake's settings), and closes it
// when t ends.
func Start[F interface{ Close() }](t testing.TB, start func(apifake.Backend) F, zones ...string) (F, *apifake.Memory) {
	t.Helper()
	mem := apifake.NewMemory(zones...)
	f := start(mem)
	t.Cleanup(f.Close)
	return f, mem
}

// New builds a provider with newProvider (a provider package's New) from
// cfg, failing t if it cannot.
func New[C any](t testing.TB, newProvider func(C) (dnsprovider.Provider, error), cfg C) dnsprovider.Provider {
	t.Helper()
	p, err := newProvider(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// EnvCase is a setting that a provider's FromEnv must refuse.
type EnvCase struct {
	Name string            // the subtest's name
	Env  map[string]string // what FromEnv's getenv returns
	// Process is set in the process environment for the case, for
	// settings a provider's SDK reads from there rather than from getenv.
	Process map[string]string
	Want    string // a part of the error
}

// CheckFromEnvRejects runs each case as a subtest: fromEnv must fail with
// an error that contains the case's Want and none of hidden (the secrets of
// the cases, or a part of them).
func CheckFromEnvRejects(t *testing.T, fromEnv func(getenv func(string) string) (dnsprovider.Provider, error), cases []EnvCase, hidden ...string) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			for k, v := range tc.Process {
				t.Setenv(k, v)
			}
			p, err := fromEnv(secretenv.Map(tc.Env))
			if err == nil {
				t.Fatalf("FromEnv = %v, want an error", p)
			}
			if !strings.Contains(err.Error(), tc.Want) {
				t.Errorf("error %q does not contain %q", err, tc.Want)
			}
			for _, h := range hidden {
				if strings.Contains(err.Error(), h) {
					t.Errorf("error shows a secret (%q): %q", h, err)
				}
			}
		})
	}
}

// CheckRegistered checks that dnsprovider.FromGetenv builds a provider of
// type P named name from env.
func CheckRegistered[P dnsprovider.Provider](t testing.TB, name string, env map[string]string) {
	t.Helper()
	p, err := dnsprovider.FromGetenv(name, secretenv.Map(env))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(P); !ok || dnsprovider.Name(p) != name {
		t.Fatalf("FromGetenv gave %T named %q, want a %T named %q", p, dnsprovider.Name(p), *new(P), name)
	}
}

// CheckRoundTrip appends the TXT values "one" and "two" at _acme-challenge
// and the extra records in zone (named as the backend names it, with the
// final dot) through p, checks what p gets and what the backend of p's
// fake holds, appends "one" again (which must succeed and change nothing),
// deletes "one" with a value that is not there (only "one" is deleted, the
// rest of its record set stays), then deletes the rest, after which the
// zone holds nothing. Each call spells the zone differently (upper case,
// without and with the final dot): providers must accept every spelling.
func CheckRoundTrip(t testing.TB, p dnsprovider.Provider, backend libdns.RecordGetter, zone string, extra ...libdns.TXT) {
	t.Helper()
	ctx := context.Background()
	bare := strings.TrimSuffix(zone, ".")
	recs := []libdns.Record{TXT("_acme-challenge", "one"), TXT("_acme-challenge", "two")}
	for _, r := range extra {
		recs = append(recs, r)
	}
	added, err := p.AppendRecords(ctx, strings.ToUpper(bare), recs)
	if err != nil || len(added) != len(recs) {
		t.Fatalf("AppendRecords = %v, %v; want the %d records", added, err, len(recs))
	}
	if got := Texts(t, p.(libdns.RecordGetter), zone, "_acme-challenge"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("GetRecords = %v, want one and two", got)
	}
	for _, r := range extra {
		name := cmp.Or(r.Name, "@") // libdns's two names of the apex
		if got := Texts(t, backend, zone, name); len(got) != 1 || got[0] != r.Text {
			t.Fatalf("backend TXT at %s = %q, want the value %q intact", name, got, r.Text)
		}
	}
	if _, err := p.AppendRecords(ctx, bare, recs[:1]); err != nil {
		t.Fatalf("second AppendRecords: %v", err)
	}
	deleted, err := p.DeleteRecords(ctx, zone, []libdns.Record{recs[0], TXT("_acme-challenge", "absent")})
	if err != nil || len(deleted) != 1 || deleted[0].RR().Data != "one" || deleted[0].RR().Name != "_acme-challenge" {
		t.Fatalf("DeleteRecords = %v, %v; want the one deleted record", deleted, err)
	}
	// The other value of the record set stays: a provider that replaces or
	// deletes whole record sets would lose it.
	if got := Texts(t, backend, zone, "_acme-challenge"); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("backend = %v after deleting one, want two", got)
	}
	if _, err := p.DeleteRecords(ctx, zone, recs[1:]); err != nil {
		t.Fatalf("deleting the rest: %v", err)
	}
	if all, err := backend.GetRecords(ctx, zone); err != nil || len(all) != 0 {
		t.Fatalf("backend holds %v, %v after deleting everything", all, err)
	}
}

// CheckZones checks that p lists exactly the zones want, in order.
func CheckZones(t testing.TB, p dnsprovider.Provider, want ...string) {
	t.Helper()
	zones, err := p.(libdns.ZoneLister).ListZones(context.Background())
	if err != nil || !slices.Equal(zoneNames(zones), want) {
		t.Fatalf("ListZones = %v, %v; want %v", zones, err, want)
	}
}

func zoneNames(zones []libdns.Zone) []string {
	names := make([]string, 0, len(zones))
	for _, z := range zones {
		names = append(names, z.Name)
	}
	return names
}

// CheckConcurrentAppends appends ten values at _acme-challenge in zone at
// once, alternately through a and b (two fleet members writing to one
// record set), and checks that every append succeeds and the backend then
// holds all ten values: a provider whose read-modify-write loses a race must
// read again rather than drop the other member's value.
func CheckConcurrentAppends(t testing.TB, a, b dnsprovider.Provider, backend libdns.RecordGetter, zone string) {
	t.Helper()
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		p := a
		if i%2 == 1 {
			p = b
		}
		wg.Go(func() {
			_, err := p.AppendRecords(context.Background(), zone, []libdns.Record{TXT("_acme-challenge", fmt.Sprint("v", i))})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := Texts(t, backend, zone, "_acme-challenge"); len(got) != n {
		t.Fatalf("backend holds %v, want %d values", got, n)
	}
}

// CheckPermanent checks that err is a permanent *dnsprovider.OpError given
// after one attempt (so dnsprovider.WithRetry did not retry it) and that its
// message contains each of want.
func CheckPermanent(t testing.TB, err error, want ...string) {
	t.Helper()
	var oe *dnsprovider.OpError
	if !errors.As(err, &oe) || oe.Temporary || oe.Attempts != 1 {
		t.Fatalf("err = %v, want a permanent *OpError after 1 attempt", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// Fake is the part of an apifake fake API that the checks drive.
type Fake interface {
	SetFaults(apifake.Faults)
	Stats() apifake.Stats
}

// StatusFake is a Fake that fails requests on demand with an HTTP status.
type StatusFake interface {
	Fake
	FailNext(n, status int)
}

// CheckStatusErrors checks the errors of p against a fake that answers
// HTTP 429 with code (the API's error code) and Retry-After: 3: the error is
// a transient *dnsprovider.StatusError with the status, the code and the
// delay, and every injected fault gives a transient error too. It leaves the
// faults off.
func CheckStatusErrors(t testing.TB, f StatusFake, p dnsprovider.Provider, zone, code string) {
	t.Helper()
	f.SetFaults(apifake.Faults{RetryAfter: 3 * time.Second})
	defer f.SetFaults(apifake.Faults{})
	ctx := context.Background()
	g := p.(libdns.RecordGetter)
	// A first call fetches what the provider caches (an access token, a
	// zone id), so that the failure below falls on the write itself.
	if _, err := g.GetRecords(ctx, zone); err != nil {
		t.Fatal(err)
	}
	f.FailNext(1, 429)
	_, err := p.AppendRecords(ctx, zone, []libdns.Record{TXT("x", "v")})
	var se *dnsprovider.StatusError
	if !errors.As(err, &se) || se.StatusCode != 429 || se.Code != code || !dnsprovider.IsTransientAPIError(err) {
		t.Fatalf("err = %v, want a transient 429 StatusError with code %q", err, code)
	}
	if d, ok := dnsprovider.RetryAfter(err); !ok || d != 3*time.Second {
		t.Fatalf("RetryAfter = %s, %t; want 3s", d, ok)
	}
	f.SetFaults(apifake.Faults{Rate: 1, Seed: 2})
	for range 10 {
		if _, err := g.GetRecords(ctx, zone); err == nil || !dnsprovider.IsTransientAPIError(err) {
			t.Fatalf("injected fault gave %v, want a transient error", err)
		}
	}
}

// CheckRetryThroughFaults makes f fail 30% of its requests and lose the
// answer of 5% of its writes, then checks that p, wrapped in
// dnsprovider.WithRetry, completes every write to zone and neither loses
// nor duplicates a record in mem, f's backend (see
// apifake.CheckWritesThroughFaults), and that enough faults were injected
// for that to mean something.
func CheckRetryThroughFaults(t testing.TB, f Fake, p dnsprovider.Provider, mem *apifake.Memory, zone string) {
	t.Helper()
	f.SetFaults(apifake.Faults{Rate: 0.3, LostRate: 0.05, Seed: 42})
	retried := dnsprovider.WithRetry(p, dnsprovider.RetryPolicy{
		MaxAttempts: 40, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
	})
	apifake.CheckWritesThroughFaults(t, retried, mem, zone)
	st := f.Stats()
	if st.Faults < 20 {
		t.Errorf("only %d faults injected in %d requests", st.Faults, st.Requests)
	}
	t.Logf("%d requests, %d faults injected", st.Requests, st.Faults)
}

// CheckGuardRefuses checks that p, wrapped in dnsprovider.Guard for
// allowed, refuses a write to refused with dnsprovider.ErrZoneNotAllowed
// naming the zone, and that f received no request for it.
func CheckGuardRefuses(t testing.TB, f Fake, p dnsprovider.Provider, allowed, refused string) {
	t.Helper()
	guarded := dnsprovider.Guard(p, allowed)
	_, err := guarded.AppendRecords(context.Background(), refused, []libdns.Record{TXT("_acme-challenge", "v")})
	if !errors.Is(err, dnsprovider.ErrZoneNotAllowed) || !strings.Contains(err.Error(), fmt.Sprintf("zone %q", refused)) {
		t.Fatalf("err = %v, want ErrZoneNotAllowed naming zone %q", err, refused)
	}
	if n := f.Stats().Requests; n != 0 {
		t.Fatalf("the API received %d requests for a refused write", n)
	}
}

// Leaks gathers everything a provider shows of itself, its configuration
// and its errors (formatted values, log records, error messages), so that
// a test can check that none of it shows a secret.
type Leaks struct {
	// Logger writes JSON records at debug level into the gathered logs;
	// give it to the providers and wrappers under test.
	Logger *slog.Logger

	logs    bytes.Buffer
	outputs []string
}

// NewLeaks returns an empty Leaks.
func NewLeaks() *Leaks {
	l := &Leaks{}
	l.Logger = slog.New(slog.NewJSONHandler(&l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

// configVerbs are the verbs a configuration is formatted with: every verb
// that prints a struct's fields, %q and %x included.
var configVerbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"}

// providerVerbs are those a provider is formatted with.
var providerVerbs = []string{"%v", "%+v", "%#v", "%s", "%x", "%d"}

// Format gathers cfg (a provider's configuration) formatted with every verb
// that prints its fields.
func (l *Leaks) Format(cfg any) {
	for _, verb := range configVerbs {
		l.outputs = append(l.outputs, fmt.Sprintf(verb, cfg))
	}
}

// Show gathers a provider and the same provider wrapped (in
// dnsprovider.WithRetry, dnsprovider.Audit) formatted with every verb, and
// logs the provider with cfg through Logger.
func (l *Leaks) Show(cfg any, inner, wrapped dnsprovider.Provider) {
	for _, verb := range providerVerbs {
		l.outputs = append(l.outputs, fmt.Sprintf(verb, inner), fmt.Sprintf(verb, wrapped))
	}
	l.Logger.Info("provider", "p", inner, "cfg", cfg)
}

// Write appends and then deletes a TXT record in zone through p, gathering
// the errors in every form.
func (l *Leaks) Write(p dnsprovider.Provider, zone string) {
	ctx := context.Background()
	if _, err := p.AppendRecords(ctx, zone, []libdns.Record{TXT("x", "v")}); err != nil {
		l.outputs = append(l.outputs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	if _, err := p.DeleteRecords(ctx, zone, []libdns.Record{TXT("x", "v")}); err != nil {
		l.outputs = append(l.outputs, err.Error())
	}
}

// Check logs cfg through a text handler too, then fails t unless the logs
// contain each of exercised (so that the test did reach the records and
// errors it means to check) or if anything gathered contains any of hidden
// (the secrets, or parts or encodings of them).
func (l *Leaks) Check(t testing.TB, cfg any, exercised []string, hidden ...string) {
	t.Helper()
	slog.New(slog.NewTextHandler(&l.logs, nil)).Info("text", "cfg", cfg)
	logs := l.logs.String()
	for _, want := range exercised {
		if !strings.Contains(logs, want) {
			t.Fatalf("the test did not exercise %q: %s", want, logs)
		}
	}
	for _, s := range append(l.outputs, logs) {
		for _, h := range hidden {
			if strings.Contains(s, h) {
				t.Fatalf("a secret (%q) appears in %q", h, s)
			}
		}
	}
}
