package dns01

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/leakcheck"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/wait"
)

func TestSolverJournalsRecordBeforeWritingAndRemovesEntryAfterCleanUp(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	hp := &hookProvider{Provider: w.Provider()}
	var journaled []string
	hp.onAppend = func(context.Context, string, []libdns.Record) error {
		journaled = w.journal(t)
		return nil
	}
	s := newTestSolver(t, w.config(t, hp))
	ctx := context.Background()
	chal := challenge("www.example.test", "tok1")

	if err := s.Present(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if len(journaled) != 1 {
		t.Fatalf("journal when the record was written: %q, want one entry", journaled)
	}
	entry, err := w.storage.Load(ctx, journaled[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(entry), chal.DNS01KeyAuthorization()) {
		t.Errorf("journal entry %s does not name the value", entry)
	}
	if got := w.Zones().TXT("_acme-challenge.www.example.test"); len(got) != 1 || got[0] != chal.DNS01KeyAuthorization() {
		t.Fatalf("TXT at _acme-challenge.www.example.test = %q", got)
	}
	if err := s.Wait(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanUp(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if got := w.challengeTXT(t, "example.test"); len(got) != 0 {
		t.Errorf("TXT records after CleanUp: %v", got)
	}
	if got := w.journal(t); len(got) != 0 {
		t.Errorf("journal after CleanUp: %q", got)
	}
}

func TestSolverFollowsCNAMEToAnotherZone(t *testing.T) {
	tests := []struct {
		name  string
		cname map[string]string // CNAME records: name -> target
		want  string            // where the TXT must be written
	}{
		{"one CNAME", map[string]string{"_acme-challenge.app.example.test": "app.acme.delegated.test"}, "app.acme.delegated.test."},
		{"chain of two", map[string]string{
			"_acme-challenge.app.example.test": "hop.chain.test",
			"hop.chain.test":                   "final.delegated.test",
		}, "final.delegated.test."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newSolverWorld(t, "example.test", "delegated.test", "chain.test")
			for name, target := range tt.cname {
				zone := "example.test."
				if strings.HasSuffix(name, "chain.test") {
					zone = "chain.test."
				}
				if _, err := w.Provider().AppendRecords(context.Background(), zone, []libdns.Record{
					libdns.CNAME{Name: libdns.RelativeName(name+".", zone), Target: target + "."},
				}); err != nil {
					t.Fatal(err)
				}
			}
			// The guard proves that nothing is written outside the target zone.
			s := newTestSolver(t, w.config(t, dnsprovider.Guard(w.Provider(), "delegated.test")))
			ctx := context.Background()
			chal := challenge("app.example.test", "tok")
			if err := s.Present(ctx, chal); err != nil {
				t.Fatal(err)
			}
			if got := w.challengeTXT(t, "delegated.test"); len(got[tt.want]) != 1 || len(got) != 1 {
				t.Fatalf("TXT records in delegated.test = %v, want one at %s", got, tt.want)
			}
			for _, z := range []string{"example.test", "chain.test"} {
				if got := w.challengeTXT(t, z); len(got) != 0 {
					t.Fatalf("TXT records in %s = %v, want none", z, got)
				}
			}
			if err := s.Wait(ctx, chal); err != nil {
				t.Fatal(err)
			}
			if err := s.CleanUp(ctx, chal); err != nil {
				t.Fatal(err)
			}
			if got := w.challengeTXT(t, "delegated.test"); len(got) != 0 {
				t.Fatalf("TXT records after CleanUp: %v", got)
			}
		})
	}
}

func TestSolverRejectsCNAMELoop(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	for name, target := range map[string]string{"_acme-challenge.loop": "a.example.test.", "a": "_acme-challenge.loop.example.test."} {
		if _, err := w.Provider().AppendRecords(context.Background(), "example.test.", []libdns.Record{libdns.CNAME{Name: name, Target: target}}); err != nil {
			t.Fatal(err)
		}
	}
	s := newTestSolver(t, w.config(t, nil))
	err := s.Present(context.Background(), challenge("loop.example.test", "tok"))
	if err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("Present through a CNAME loop: %v, want an error naming the loop", err)
	}
}

func TestPropagationPolicyWithLaggingNameserver(t *testing.T) {
	tests := []struct {
		policy         Propagation
		readyWhilePaus bool // ready while the second nameserver lags
	}{
		{PropagationAll, false},
		{PropagationAny, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			w := newSolverWorld(t, "example.test")
			ns2 := w.secondNameserver(t, "example.test.")
			ns2.Pause() // a secondary that has not caught up
			cfg := w.config(t, nil)
			cfg.Propagation = tt.policy
			s := newTestSolver(t, cfg)
			ctx := context.Background()
			chal := challenge("example.test", "tok")
			if err := s.Present(ctx, chal); err != nil {
				t.Fatal(err)
			}
			asked := ns2.Queries()
			waited := make(chan error, 1)
			go func() { waited <- s.Wait(ctx, chal) }()

			if tt.readyWhilePaus {
				select {
				case err := <-waited:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("Wait did not return while one nameserver served the record")
				}
				if !ns2.Paused() {
					t.Fatal("test error: ns2 resumed")
				}
				return
			}
			// The solver keeps asking the lagging server and is not ready.
			wait.For(t, 20*time.Second, "the solver to ask the lagging nameserver three times", func() bool {
				return ns2.Queries() >= asked+3
			})
			select {
			case err := <-waited:
				t.Fatalf("Wait returned (%v) while ns2 did not serve the record", err)
			default:
			}
			ns2.Resume()
			select {
			case err := <-waited:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Wait did not return after ns2 caught up")
			}
		})
	}
}

func TestPropagationTimeoutNamesTheLaggingNameserver(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	ns2 := w.secondNameserver(t, "example.test.")
	ns2.Pause()
	cfg := w.config(t, nil)
	cfg.PropagationTimeout = 300 * time.Millisecond
	s := newTestSolver(t, cfg)
	ctx := context.Background()
	chal := challenge("example.test", "tok")
	if err := s.Present(ctx, chal); err != nil {
		t.Fatal(err)
	}
	err := s.Wait(ctx, chal)
	if err == nil {
		t.Fatal("Wait succeeded while ns2 lagged")
	}
	for _, want := range []string{"ns2.example.test", "does not serve the value yet", "propagation timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "nameserver ns1.example.test") {
		t.Errorf("error %q names ns1, which serves the record", err)
	}
}

func TestPropagationCheckFallsBackToTCPForLargeAnswers(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	var recs []libdns.Record
	for i := range 40 { // about 2 KB of TXT data: more than fits in UDP
		recs = append(recs, libdns.TXT{Name: "_acme-challenge", Text: fmt.Sprintf("%044d", i)})
	}
	if _, err := w.Provider().AppendRecords(context.Background(), "example.test.", recs); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []Propagation{PropagationAll, PropagationResolvers} {
		t.Run(string(policy), func(t *testing.T) {
			cfg := w.config(t, nil)
			cfg.Propagation = policy
			cfg.PropagationTimeout = 10 * time.Second
			s := newTestSolver(t, cfg)
			chal := challenge("example.test", "tok-"+string(policy))
			if err := s.Present(context.Background(), chal); err != nil {
				t.Fatal(err)
			}
			if err := s.Wait(context.Background(), chal); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSolverSkipPolicyNeedsNoNameservers(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	cfg := w.config(t, nil)
	cfg.Propagation = PropagationSkip
	cfg.NameserverPort = 1 // nothing answers there; it must not be asked
	s := newTestSolver(t, cfg)
	chal := challenge("example.test", "tok")
	if err := s.Present(context.Background(), chal); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(context.Background(), chal); err != nil {
		t.Fatal(err)
	}
}

// failing is a provider whose writes fail with queued errors first.
type failing struct {
	*hookProvider
	mu      sync.Mutex
	errs    map[string][]error // by "append"/"delete"
	calls   map[string]int
	applied bool // a failing append is applied first (a lost answer)
}

func newFailing(w *solverWorld) *failing {
	f := &failing{hookProvider: &hookProvider{Provider: w.Provider()}, errs: map[string][]error{}, calls: map[string]int{}}
	f.onAppend = func(ctx context.Context, zone string, recs []libdns.Record) error {
		err := f.next("append")
		if err != nil && f.applied {
			_, _ = f.Provider.AppendRecords(ctx, zone, recs)
		}
		return err
	}
	f.onDelete = func(context.Context, string, []libdns.Record) error { return f.next("delete") }
	return f
}

func (f *failing) failNext(op string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[op] = append(f.errs[op], errs...)
}

func (f *failing) next(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if len(f.errs[op]) == 0 {
		return nil
	}
	err := f.errs[op][0]
	f.errs[op] = f.errs[op][1:]
	return err
}

func (f *failing) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func TestSolverRetriesTransientErrorsAndFailsFastOnPermanentOnes(t *testing.T) {
	throttled := &dnsprovider.StatusError{StatusCode: http.StatusTooManyRequests, RetryAfter: 20 * time.Millisecond}
	unavailable := &dnsprovider.StatusError{StatusCode: http.StatusServiceUnavailable}
	forbidden := &dnsprovider.StatusError{StatusCode: http.StatusForbidden, Message: "token lacks Zone.DNS:Edit"}
	tests := []struct {
		name      string
		errs      []error
		applied   bool
		wantErr   []string // in the error; none for success
		wantCalls int
	}{
		{"429 then 503 then success", []error{throttled, unavailable}, false, nil, 3},
		{"lost answers are not written twice", []error{unavailable, unavailable}, true, nil, 1},
		{"403 fails at once", []error{forbidden}, false, []string{"permanent error", "HTTP 403", `zone "example.test."`, "_acme-challenge.example.test", "token lacks"}, 1},
		{"transient errors until the policy gives up", []error{unavailable, unavailable, unavailable}, false, []string{"still failing after 3 attempts", "HTTP 503"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newSolverWorld(t, "example.test")
			f := newFailing(w)
			f.applied = tt.applied
			f.failNext("append", tt.errs...)
			cfg := w.config(t, f)
			cfg.Retry.MaxAttempts = 3
			s := newTestSolver(t, cfg)
			chal := challenge("example.test", "tok")
			err := s.Present(context.Background(), chal)
			if got := f.count("append"); got != tt.wantCalls {
				t.Errorf("%d appends, want %d", got, tt.wantCalls)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := w.Zones().TXT("_acme-challenge.example.test"); len(got) != 1 {
					t.Fatalf("TXT values: %q, want one", got)
				}
				return
			}
			if err == nil {
				t.Fatal("Present succeeded")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			var oe *dnsprovider.OpError
			if !errors.As(err, &oe) || oe.Provider == "" {
				t.Errorf("error %q is not a *dnsprovider.OpError naming the provider", err)
			}
			if got := w.challengeTXT(t, "example.test"); len(got) != 0 {
				t.Errorf("TXT records after a failed Present: %v", got)
			}
			if got := w.journal(t); len(got) != 0 {
				t.Errorf("journal after a failed Present whose record is gone: %q", got)
			}
		})
	}
}

func TestSolverErrorNamesAnUnknownZone(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	s := newTestSolver(t, w.config(t, nil))
	err := s.Present(context.Background(), challenge("www.unserved.test", "tok"))
	if err == nil || !strings.Contains(err.Error(), "www.unserved.test") {
		t.Fatalf("Present for a name in no served zone: %v, want an error naming it", err)
	}
}

func TestSolverSweepRetriesItsOwnFailedCleanUp(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	f := newFailing(w)
	cfg := w.config(t, f)
	cfg.Retry.MaxAttempts = 1
	var logs syncbuf.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := newTestSolver(t, cfg)
	ctx := context.Background()
	chal := challenge("example.test", "tok")
	if err := s.Present(ctx, chal); err != nil {
		t.Fatal(err)
	}
	f.failNext("delete", &dnsprovider.StatusError{StatusCode: http.StatusBadGateway})
	if err := s.CleanUp(ctx, chal); err == nil {
		t.Fatal("CleanUp succeeded despite the provider failing")
	}
	if len(w.journal(t)) != 1 || len(w.challengeTXT(t, "example.test")) != 1 {
		t.Fatal("the record and its journal entry should remain after a failed CleanUp")
	}
	// The Solver's own first sweep may still be pending and get there
	// first: either way, one sweep deletes the record, once.
	wait.For(t, 10*time.Second, "a sweep to delete the record and its journal entry", func() bool {
		if _, err := s.Sweep(ctx); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		return len(w.journal(t)) == 0 && len(w.challengeTXT(t, "example.test")) == 0
	})
	if n := strings.Count(logs.String(), "deleted orphaned DNS-01 challenge record"); n != 1 {
		t.Fatalf("%d deletions logged, want 1:\n%s", n, logs.String())
	}
}

// lockSpy is a storage that counts attempts to take record locks.
type lockSpy struct {
	Storage
	attempts atomic.Int32
}

func (l *lockSpy) Lock(ctx context.Context, name string) error {
	if strings.HasPrefix(name, recordLockName) {
		l.attempts.Add(1)
	}
	return l.Storage.Lock(ctx, name)
}

func TestWritesToOneNameAreSerializedAcrossMembers(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	hp := &hookProvider{Provider: w.Provider()}
	spy := &lockSpy{Storage: w.storage}
	var mu sync.Mutex
	inflight, maxInflight := 0, 0
	first := true
	hp.onAppend = func(ctx context.Context, _ string, _ []libdns.Record) error {
		mu.Lock()
		inflight++
		maxInflight = max(maxInflight, inflight)
		hold := first
		first = false
		mu.Unlock()
		if hold {
			// Hold the first write until the other member asks for the lock.
			if !wait.Until(20*time.Second, func() bool { return spy.attempts.Load() >= 2 || ctx.Err() != nil }) {
				return errors.New("test: the second member did not ask for the lock")
			}
		}
		mu.Lock()
		inflight--
		mu.Unlock()
		return nil
	}
	var solvers []*Solver
	for range 2 { // two members of a fleet
		cfg := w.config(t, hp)
		cfg.Storage = spy
		solvers = append(solvers, newTestSolver(t, cfg))
	}
	// The first member takes the lock before the second asks for it.
	errs := make(chan error, 2)
	go func() { errs <- solvers[0].Present(context.Background(), challenge("example.test", "apex")) }()
	wait.For(t, 20*time.Second, "the first member to write", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !first
	})
	go func() { errs <- solvers[1].Present(context.Background(), challenge("example.test", "wildcard")) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if maxInflight != 1 {
		t.Fatalf("%d writes to one record name overlapped across members, want 1", maxInflight)
	}
	if got := w.Zones().TXT("_acme-challenge.example.test"); len(got) != 2 {
		t.Fatalf("TXT values = %q, want both", got)
	}
}

func TestOneMemberWritesConcurrentlyUnderTheFleetLock(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	hp := &hookProvider{Provider: w.Provider()}
	arrived := make(chan struct{}, 2)
	hp.onAppend = func(ctx context.Context, _ string, _ []libdns.Record) error {
		arrived <- struct{}{}
		// Each write waits for the other: the test passes only if the
		// process does not serialize its own writes.
		if !wait.Until(20*time.Second, func() bool { return len(arrived) == 2 || ctx.Err() != nil }) {
			return errors.New("test: the other write did not arrive while this one was in flight")
		}
		return nil
	}
	s := newTestSolver(t, w.config(t, hp))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, tok := range []string{"apex", "wildcard"} {
		wg.Go(func() { errs[i] = s.Present(context.Background(), challenge("example.test", tok)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestSolverCloseCleansUpAndStopsEverything(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	before := leakcheck.Take()
	s, err := New(w.config(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Present(ctx, challenge("example.test", "tok")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.challengeTXT(t, "example.test"); len(got) != 0 {
		t.Errorf("TXT records after Close: %v", got)
	}
	if got := w.journal(t); len(got) != 0 {
		t.Errorf("journal after Close: %q", got)
	}
	if owners, _ := w.storage.List(ctx, "dns01/owners", false); len(owners) != 0 {
		t.Errorf("leases after Close: %q", owners)
	}
	if err := s.Present(ctx, challenge("example.test", "late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Present after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// certmagic.FileStorage refreshes each lock file for up to 5 s after
	// it is released.
	before.Check(t, 10*time.Second)
}

func TestNewRejectsBadConfigNamingTheField(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no provider", func(c *Config) { c.DNS = nil }, "Config.DNS: a DNS provider is required"},
		{"no storage", func(c *Config) { c.Storage = nil }, "Config.Storage"},
		{"bad port", func(c *Config) { c.NameserverPort = 70000 }, "Config.NameserverPort: 70000 is not a port"},
		{"bad resolver", func(c *Config) { c.Resolvers = []string{"not a resolver"} }, "Config.Resolvers[0]"},
		{"bad resolver port", func(c *Config) { c.Resolvers = []string{"127.0.0.1:0"} }, "Config.Resolvers[0]"},
		{"unknown policy", func(c *Config) { c.Propagation = "most" }, `Config.Propagation: unknown propagation check "most"`},
		{"resolvers policy without resolvers", func(c *Config) { c.Propagation = PropagationResolvers; c.Resolvers = nil }, "needs Resolvers"},
		{"negative delay", func(c *Config) { c.PropagationDelay = -time.Second }, "Config.PropagationDelay: -1s is negative"},
		{"tiny lease", func(c *Config) { c.OwnerLease = time.Millisecond }, "Config.OwnerLease: 1ms is too short: use at least 100ms"},
		{"huge lease", func(c *Config) { c.OwnerLease = 2 * time.Hour }, "Config.OwnerLease: 2h0m0s is too long: use at most 1h0m0s"},
		{"tiny sweep interval", func(c *Config) { c.SweepInterval = time.Millisecond }, "Config.SweepInterval: 1ms is too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := w.config(t, nil)
			tt.change(&cfg)
			s, err := New(cfg)
			if err == nil {
				s.Close()
				t.Fatalf("NewSolver accepted %s", tt.name)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParsePropagation(t *testing.T) {
	for in, want := range map[string]Propagation{"": PropagationAuto, "AUTO": PropagationAuto, "ALL": PropagationAll, " any ": PropagationAny, "resolvers": PropagationResolvers, "skip": PropagationSkip} {
		got, err := ParsePropagation(in)
		if err != nil || got != want {
			t.Errorf("ParsePropagation(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParsePropagation("some"); err == nil || !strings.Contains(err.Error(), "auto, all, any, resolvers or skip") {
		t.Errorf("ParsePropagation(some): %v", err)
	}
}

func TestSolverDoesNotWrapARetryingProviderAgain(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	f := newFailing(w)
	unavailable := &dnsprovider.StatusError{StatusCode: http.StatusServiceUnavailable}
	f.failNext("append", unavailable, unavailable, unavailable, unavailable)
	// The provider retries twice in all; the Solver's own policy (5
	// attempts) must not multiply that.
	cfg := w.config(t, dnsprovider.Audit(dnsprovider.WithRetry(f, dnsprovider.RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}), slog.New(slog.DiscardHandler)))
	cfg.Retry.MaxAttempts = 5
	s := newTestSolver(t, cfg)
	if err := s.Present(context.Background(), challenge("example.test", "tok")); err == nil || !strings.Contains(err.Error(), "still failing after 2 attempts") {
		t.Fatalf("Present: %v, want the provider's own policy to give up after 2 attempts", err)
	}
	if got := f.count("append"); got != 2 {
		t.Fatalf("%d appends, want 2", got)
	}
}
