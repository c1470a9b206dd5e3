package tlsauto_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/internal/leakcheck"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/tlsauto"
)

// flakyDNS fails every write for names under failing until recover is
// called, and counts the writes it refused.
type flakyDNS struct {
	*testacme.Provider
	failing string // a zone-relative suffix, such as "down.example.test"
	down    atomic.Bool
	refused atomic.Int32
}

func (f *flakyDNS) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		if f.down.Load() && strings.HasSuffix(r.RR().Name+"."+strings.TrimSuffix(zone, "."), f.failing) {
			f.refused.Add(1)
			return nil, errors.New("test DNS API: service unavailable for this zone")
		}
	}
	return f.Provider.AppendRecords(ctx, zone, recs)
}

func TestNameThatFailsDuringStartIsServedOnceTheProviderRecovers(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	dns := &flakyDNS{Provider: w.Provider(), failing: "down.example.test"}
	dns.down.Store(true)
	cfg := testConfig(t, w, "up.example.test", "down.example.test")
	cfg.DNS = dns
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	err = m.Start(ctx)
	if err == nil {
		t.Fatal("Start returned nil although down.example.test could not be obtained")
	}
	if !strings.Contains(err.Error(), "down.example.test") || strings.Contains(err.Error(), "up.example.test") {
		t.Fatalf("Start's error does not name exactly the failing name: %v", err)
	}
	if !strings.Contains(err.Error(), "service unavailable") {
		t.Fatalf("Start's error does not carry the last attempt's error: %v", err)
	}
	if dns.refused.Load() == 0 {
		t.Fatal("the failing provider was never called")
	}
	addr := serve(t, m)
	mustHandshake(t, addr, "up.example.test", w.Roots())
	if _, err := handshake(t, addr, "down.example.test", w.Roots()); err == nil {
		t.Fatal("down.example.test is served although its certificate could not be obtained")
	}

	dns.down.Store(false) // the DNS API recovers; nobody calls the Manager
	wait.For(t, time.Minute, "down.example.test to be served after the provider recovered", func() bool {
		_, err := handshake(t, addr, "down.example.test", w.Roots())
		return err == nil
	})
}

func TestManageAndUnmanageAtRuntime(t *testing.T) {
	w := testacme.Start(t, testacme.Options{Zones: []string{"example.test", "other.test"}})
	m := startManager(t, testConfig(t, w, "fixed.example.test"))
	addr := serve(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := m.Manage(ctx, "Added.Example.Test.", "*.other.test"); err != nil {
		t.Fatal(err)
	}
	mustHandshake(t, addr, "added.example.test", w.Roots())
	mustHandshake(t, addr, "x.other.test", w.Roots())
	if got, want := strings.Join(m.Domains(), " "), "fixed.example.test *.other.test added.example.test"; got != want {
		t.Fatalf("Domains() = %q, want %q", got, want)
	}
	orders := w.Counts().Orders
	if err := m.Manage(ctx, "added.example.test"); err != nil {
		t.Fatal(err)
	}
	if got := w.Counts().Orders; got != orders {
		t.Fatalf("managing a managed name again placed %d orders", got-orders)
	}

	if err := m.Unmanage(ctx, "added.example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, addr, "added.example.test", w.Roots()); err == nil {
		t.Fatal("an unmanaged name is still served")
	}
	mustHandshake(t, addr, "x.other.test", w.Roots())
	if got, want := strings.Join(m.Domains(), " "), "fixed.example.test *.other.test"; got != want {
		t.Fatalf("Domains() after Unmanage = %q, want %q", got, want)
	}
	if err := m.Renew(ctx, "added.example.test"); err == nil {
		t.Fatal("Renew accepted an unmanaged name")
	}

	if err := m.Unmanage(ctx, "fixed.example.test"); err == nil || !strings.Contains(err.Error(), "Config.Domains") {
		t.Fatalf("Unmanage of a Config.Domains name = %v, want an error saying it is always managed", err)
	}
	mustHandshake(t, addr, "fixed.example.test", w.Roots())

	var ce *tlsauto.ConfigError
	if err := m.Manage(ctx, "bad..example.test"); !errors.As(err, &ce) || ce.Field != "names[0]" {
		t.Fatalf("Manage of an invalid name = %v, want a ConfigError for names[0]", err)
	}
	if err := m.Manage(ctx); err == nil {
		t.Fatal("Manage with no names returned nil")
	}
}

// hangingDNS blocks every call until its context ends, like an API that
// accepts connections and never answers.
type hangingDNS struct {
	*testacme.Provider
	calls atomic.Int32
}

func (h *hangingDNS) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	h.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (h *hangingDNS) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	h.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestShutdownIsBoundedWhileTheDNSAPIHangs(t *testing.T) {
	w, err := testacme.New(testacme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	before := leakcheck.Take()
	dns := &hangingDNS{Provider: w.Provider()}
	cfg := testConfig(t, w, "hang.example.test")
	cfg.DNS = dns
	m, err := tlsauto.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	startErr := make(chan error, 1)
	go func() { startErr <- m.Start(context.Background()) }()
	wait.For(t, 30*time.Second, "the DNS API to be called", func() bool { return dns.calls.Load() > 0 })

	renewErr := make(chan error, 1)
	go func() { renewErr <- m.Renew(context.Background(), "hang.example.test") }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Shutdown did not return when its context ended")
	}
	for what, ch := range map[string]chan error{"Start": startErr, "Renew": renewErr} {
		select {
		case err := <-ch:
			if err == nil {
				t.Errorf("%s returned nil although the Manager shut down before a certificate was had", what)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s did not return after Shutdown", what)
		}
	}
	if err := m.Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if err := m.Manage(context.Background(), "late.example.test"); err == nil {
		t.Fatal("Manage after Shutdown returned nil")
	}
	w.Close() // ends the ACME client's idle keep-alive connections
	before.Check(t, 10*time.Second, "certmagic.(*RingBufferRateLimiter)")
}

func TestConcurrentManageUnmanageKeepsServingFixedNames(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	m := startManager(t, testConfig(t, w, "steady.example.test"))
	addr := serve(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			name := []string{"c0.example.test", "c1.example.test", "c2.example.test", "c3.example.test"}[i]
			for range 3 {
				if err := m.Manage(ctx, name); err != nil {
					t.Error(err)
					return
				}
				if err := m.Unmanage(ctx, name); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	mustHandshake(t, addr, "steady.example.test", w.Roots())
	if got := strings.Join(m.Domains(), " "); got != "steady.example.test" {
		t.Fatalf("Domains() = %q after every added name was removed", got)
	}
	for _, n := range []string{"c0.example.test", "c3.example.test"} {
		if _, err := handshake(t, addr, n, w.Roots()); err == nil {
			t.Fatalf("%s is served after Unmanage", n)
		}
	}
}
