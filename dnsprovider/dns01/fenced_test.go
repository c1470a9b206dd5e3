package dns01

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
)

// fenceNameservers makes the only nameserver of zone one at ip that cannot
// be reached on the world's port: a blackhole that drops every packet, or
// (drop false) no server at all. The world's own server stays the resolver.
func (w *solverWorld) fenceNameservers(t *testing.T, zone, ip string, drop bool) {
	t.Helper()
	if drop {
		b, err := testacme.NewBlackhole(ip + ":" + strconv.Itoa(w.port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
	}
	if err := w.Zones().SetNameServers(zone, testacme.NameServer{Host: "ns-fenced." + zone, Addr: netip.MustParseAddr(ip)}); err != nil {
		t.Fatal(err)
	}
}

// failFast waits for f, failing the test if it takes longer than a
// propagation timeout would suggest it waited the timeout out.
func failFast(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("did not return before the 2-minute propagation timeout")
		return nil
	}
}

func TestFencedNameserversFallBackToResolversUnderAutoAndAreLoggedOnce(t *testing.T) {
	for _, tt := range []struct {
		name string
		drop bool
	}{{"packets dropped", true}, {"nothing listening", false}} {
		t.Run(tt.name, func(t *testing.T) {
			w := newSolverWorld(t, "example.test")
			w.fenceNameservers(t, "example.test.", "127.0.0.7", tt.drop)
			var logs syncbuf.Buffer
			cfg := w.config(t, nil)
			cfg.PropagationTimeout = 2 * time.Minute
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			if cfg.Propagation != "" {
				t.Fatal("test error: the default policy must be under test")
			}
			s := newTestSolver(t, cfg)
			ctx := context.Background()
			for _, name := range []string{"example.test", "www.example.test"} {
				chal := challenge(name, "tok-"+name)
				if err := s.Present(ctx, chal); err != nil {
					t.Fatal(err)
				}
				if err := failFast(t, func() error { return s.Wait(ctx, chal) }); err != nil {
					t.Fatalf("Wait for %s: %v", name, err)
				}
			}
			out := logs.String()
			if n := strings.Count(out, "cannot reach authoritative nameservers"); n != 1 {
				t.Fatalf("the unreachable nameservers were logged %d times, want once:\n%s", n, out)
			}
			for _, want := range []string{"ns-fenced.example.test (127.0.0.7:" + strconv.Itoa(w.port) + ")", "PropagationCheck=resolvers", "level=WARN", "checking through the resolvers"} {
				if !strings.Contains(out, want) {
					t.Errorf("log does not contain %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestFencedNameserversFailFastUnderAll(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	w.fenceNameservers(t, "example.test.", "127.0.0.7", true)
	cfg := w.config(t, nil)
	cfg.Propagation = PropagationAll
	cfg.PropagationTimeout = 2 * time.Minute
	s := newTestSolver(t, cfg)
	chal := challenge("example.test", "tok")
	if err := s.Present(context.Background(), chal); err != nil {
		t.Fatal(err)
	}
	err := failFast(t, func() error { return s.Wait(context.Background(), chal) })
	var pe *PropagationError
	if !errors.As(err, &pe) || !errors.Is(err, ErrNameserversUnreachable) {
		t.Fatalf("Wait: %v; want a *PropagationError wrapping ErrNameserversUnreachable", err)
	}
	for _, want := range []string{"nameserver ns-fenced.example.test (127.0.0.7:", "no answer within", "PropagationCheck=resolvers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if len(pe.Servers) != 1 || !pe.Servers[0].Unreachable || pe.Policy != PropagationAll {
		t.Fatalf("error rows %+v", pe.Servers)
	}
}

func TestPropagationTimeoutErrorHasARowPerServer(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	ns2 := w.secondNameserver(t, "example.test.")
	ns2.Pause()
	cfg := w.config(t, nil)
	cfg.Propagation = PropagationAll
	cfg.PropagationTimeout = 300 * time.Millisecond
	s := newTestSolver(t, cfg)
	chal := challenge("example.test", "tok")
	if err := s.Present(context.Background(), chal); err != nil {
		t.Fatal(err)
	}
	err := s.Wait(context.Background(), chal)
	var pe *PropagationError
	if !errors.As(err, &pe) || errors.Is(err, ErrNameserversUnreachable) {
		t.Fatalf("Wait: %v; want a *PropagationError for the timeout", err)
	}
	if pe.Name != "_acme-challenge.example.test" || pe.Zone != "example.test" || len(pe.Servers) != 2 {
		t.Fatalf("error %+v", pe)
	}
	ns1, lag := pe.Servers[0], pe.Servers[1]
	if ns1.Server != "ns1.example.test" || !ns1.Served || ns1.Err != nil {
		t.Errorf("ns1 row %+v: want served", ns1)
	}
	if lag.Server != "ns2.example.test" || lag.Served || lag.Address != ns2.Addr() || lag.Answer != "NXDOMAIN" || !errors.Is(lag.Err, errNotYet) {
		t.Errorf("ns2 row %+v: want its address, its NXDOMAIN answer and errNotYet", lag)
	}
	table := pe.Table()
	for _, want := range []string{"ROLE", "ADDRESS", "ANSWER", "ns2.example.test  " + ns2.Addr(), "NXDOMAIN", "does not serve the value yet"} {
		if !strings.Contains(table, want) {
			t.Errorf("table does not contain %q:\n%s", want, table)
		}
	}
	if !strings.Contains(err.Error(), "nameserver ns2.example.test ("+ns2.Addr()+") answered NXDOMAIN: does not serve the value yet") {
		t.Errorf("error %q does not name ns2's address and answer", err)
	}
}

func TestSolverDeletesAMirroredWriteThatCouldNotBeUndone(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	// A second provider with its own copy of the zone.
	other := testacme.NewZones()
	if err := other.AddZone("example.test"); err != nil {
		t.Fatal(err)
	}
	refused := &dnsprovider.StatusError{StatusCode: http.StatusForbidden, Message: "refused"}
	first := &hookProvider{Provider: w.Provider()}
	deletes := 0
	first.onDelete = func(context.Context, string, []libdns.Record) error {
		deletes++
		if deletes == 1 {
			return refused // the mirror's undo fails
		}
		return nil
	}
	second := &hookProvider{Provider: testacme.NewProvider(other)}
	second.onAppend = func(context.Context, string, []libdns.Record) error { return refused }
	m, err := dnsprovider.Mirror(first, second)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSolver(t, w.config(t, m))
	err = s.Present(context.Background(), challenge("example.test", "tok"))
	if !errors.Is(err, dnsprovider.ErrPartialWrite) {
		t.Fatalf("Present: %v; want ErrPartialWrite", err)
	}
	if got := w.Zones().TXT("_acme-challenge.example.test"); len(got) != 0 || deletes != 2 {
		t.Fatalf("records left on the first provider: %q (deletes %d); the solver should have deleted them", got, deletes)
	}
	if got := w.journal(t); len(got) != 0 {
		t.Fatalf("journal entries left after the records were deleted: %q", got)
	}
}
