package tlsauto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// maxInWindow returns the most times of ts (sorted) in any window
// [s, s+window).
func maxInWindow(ts []time.Time, window time.Duration) int {
	most := 0
	for i := range ts {
		j, _ := slices.BinarySearchFunc(ts, ts[i].Add(window), func(a, b time.Time) int { return a.Compare(b) })
		most = max(most, j-i)
	}
	return most
}

// TestOrderBudgetPacesManyNamesWithinEveryWindow has 200 names, each
// retrying at the time it is told (a little late, at random), take slots
// of a budget of 40 per 10 s: no window of 10 s ever holds more than 40
// orders, and every name is ordered, without a name waiting longer than
// its turn requires. (The gate widens the window by the lateness it
// allows a reserved slot.)
func TestOrderBudgetPacesManyNamesWithinEveryWindow(t *testing.T) {
	const n, names = 40, 200
	window, grace := 10*time.Second, 500*time.Millisecond
	var l orderLog
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	next := map[string]time.Time{} // name → when it tries next
	for i := range names {
		next[fmt.Sprintf("n%03d", i)] = t0.Add(time.Duration(rand.N(int64(time.Second))))
	}
	var orders []time.Time
	for len(next) > 0 {
		// the name due first tries
		var name string
		for k, at := range next {
			if name == "" || at.Before(next[name]) || at.Equal(next[name]) && k < name {
				name = k
			}
		}
		now := next[name]
		at, ok, _ := l.take(name, now, n, window+grace, grace) // as caGate does
		if ok {
			orders = append(orders, now)
			delete(next, name)
			continue
		}
		if !at.After(now) {
			t.Fatalf("%s told at %v to come back at %v", name, now, at)
		}
		next[name] = at.Add(time.Duration(rand.N(int64(grace)))) // timers fire a little late
	}
	slices.SortFunc(orders, func(a, b time.Time) int { return a.Compare(b) })
	if got := maxInWindow(orders, window); got > n {
		t.Fatalf("%d orders in one window of %v, budget %d", got, window, n)
	}
	if len(orders) != names {
		t.Fatalf("%d orders, want %d", len(orders), names)
	}
	// 200 orders at 40 per window need 5 windows: the last order falls in
	// the fifth, give or take the lateness of the retries.
	if last := orders[len(orders)-1].Sub(t0); last > 5*(window+grace) {
		t.Fatalf("last order %v after the first try; the budget allows all within %v", last, 5*(window+grace))
	}
	t.Logf("200 names, 40 per %v: last order at +%v", window, orders[len(orders)-1].Sub(t0))
}

// TestOrderBudgetReservesOneSlotPerName: once the budget is spent, each
// name waiting gets its own slot, asking early again gets the same slot,
// and a slot claimed too late is given up (no order was placed at its
// time) and the name placed anew.
func TestOrderBudgetReservesOneSlotPerName(t *testing.T) {
	window, grace := 10*time.Second, time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l orderLog
	for i := range 2 {
		if _, ok, _ := l.take(fmt.Sprint("a", i), t0.Add(time.Duration(i)*time.Second), 2, window, grace); !ok {
			t.Fatalf("order %d refused within the budget", i)
		}
	}
	b, ok, _ := l.take("b", t0.Add(2*time.Second), 2, window, grace)
	if ok || !b.Equal(t0.Add(window)) {
		t.Fatalf("b: ok=%v at %v, want a slot at %v", ok, b, t0.Add(window))
	}
	c, _, _ := l.take("c", t0.Add(3*time.Second), 2, window, grace)
	if !c.Equal(t0.Add(time.Second + window)) {
		t.Fatalf("c: slot at %v, want %v", c, t0.Add(time.Second+window))
	}
	if again, ok, _ := l.take("b", t0.Add(5*time.Second), 2, window, grace); ok || !again.Equal(b) {
		t.Fatalf("b asking early: ok=%v at %v, want its slot %v", ok, again, b)
	}
	if _, ok, _ := l.take("b", b.Add(grace/2), 2, window, grace); !ok {
		t.Fatal("b refused at its slot")
	}
	// d is given the slot after c's, then c comes back 3 s late: its
	// unused slot no longer counts, and b's order and d's slot leave room
	// for c now.
	d, _, _ := l.take("d", c.Add(-time.Second), 2, window, grace)
	if !d.Equal(b.Add(window)) {
		t.Fatalf("d: slot at %v, want %v", d, b.Add(window))
	}
	if _, ok, _ := l.take("c", c.Add(3*time.Second), 2, window, grace); !ok {
		t.Fatalf("c late: refused, though only b's order and d's slot are within a window: %v", l.Orders)
	}
	if slices.ContainsFunc(l.Orders, func(s slot) bool { return s.At.Equal(c) }) {
		t.Fatalf("c's unused slot at %v is still counted: %v", c, l.Orders)
	}
}

// TestOrderBudgetDoesNotReserveBeyondOneWindow: names past one window
// ahead are told when to come back, without a reservation, so the stored
// log stays bounded.
func TestOrderBudgetDoesNotReserveBeyondOneWindow(t *testing.T) {
	window := 10 * time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l orderLog
	for i := range 100 {
		l.take(fmt.Sprint("n", i), t0, 3, window, time.Second)
	}
	if len(l.Orders) != 6 {
		t.Fatalf("%d entries stored for a budget of 3, want 3 orders and 3 reservations", len(l.Orders))
	}
}

func TestClassifyCAErrors(t *testing.T) {
	limited := acme.Problem{Type: acme.ProblemTypeRateLimited, Status: 429, Detail: "too many new orders (300) from this account in the last 3h0m0s, retry after 2026-01-01 00:00:00 UTC"}
	perDomain := acme.Problem{Type: acme.ProblemTypeRateLimited, Status: 429, Detail: `too many certificates (50) already issued for "example.com" in the last 168h0m0s, retry after 2026-01-01 00:00:00 UTC`}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"account rate limit", fmt.Errorf("obtain: %w", limited), caLimited},
		{"registered domain limit", perDomain, caFine},
		{"503 naming a time", acme.Problem{Type: acme.ProblemTypeServerInternal, Status: 503, Detail: "down for maintenance, retry after 2026-01-01 00:00:00 UTC"}, caLimited},
		{"503", acme.Problem{Type: acme.ProblemTypeServerInternal, Status: 503}, caServerErr},
		{"5xx without a problem", errors.New("creating new order: HTTP 502: bad gateway"), caServerErr},
		{"validation failure", acme.Problem{Type: acme.ProblemTypeUnauthorized, Status: 403}, caFine},
		{"network", errors.New("dial tcp: connection refused"), caFine},
	}
	for _, tt := range tests {
		if got := classify(tt.err, "www.example.com"); got != tt.want {
			t.Errorf("%s: classify = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestRenewalsSpreadOverFirstHalfOfWindow: 10,000 certificates issued at
// the same instant start their renewals at points spread over the first
// half of the renewal window, each member computing the same point;
// short windows are not spread.
func TestRenewalsSpreadOverFirstHalfOfWindow(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * 24 * time.Hour)
	window := 30 * 24 * time.Hour
	start := na.Add(-window)
	buckets := make([]int, 15) // days of the spread
	for i := range 10_000 {
		name := fmt.Sprintf("n%05d.example.com", i)
		at, ok := spreadUntil(name, nb, na, 1.0/3, start.Add(time.Minute))
		if !ok && at.IsZero() {
			continue // its point is in the first minute
		}
		if at.Before(start) || at.After(start.Add(window/2)) {
			t.Fatalf("%s renews at %v, outside the first half of its window [%v, %v]", name, at, start, start.Add(window/2))
		}
		if again, _ := spreadUntil(name, nb, na, 1.0/3, start.Add(time.Hour)); !again.Equal(at) {
			t.Fatalf("%s: renewal point moved from %v to %v", name, at, again)
		}
		buckets[int(at.Sub(start)/(24*time.Hour))]++
	}
	for d, c := range buckets {
		if c < 500 || c > 850 { // 667 a day on average
			t.Errorf("day %d of the spread holds %d renewals of 10,000: %v", d, c, buckets)
		}
	}
	if _, ok := spreadUntil("a.example.com", nb, na, 1.0/3, start.Add(window/2)); ok {
		t.Error("a renewal past the spread is still held back")
	}
	if _, ok := spreadUntil("a.example.com", nb, na, 1.0/3, start.Add(-time.Hour)); ok {
		t.Error("a renewal ARI asked for before the window is held back")
	}
	if _, ok := spreadUntil("a.example.com", nb, nb.Add(time.Hour), 1.0/3, nb.Add(50*time.Minute)); ok {
		t.Error("the renewal of a one-hour certificate is spread")
	}
}

func TestOrderBudgetConfig(t *testing.T) {
	tests := []struct {
		budget  int
		window  time.Duration
		want    int
		wantWin time.Duration
		err     string
	}{
		{0, 0, DefaultOrderBudget, DefaultOrderBudgetWindow, ""},
		{40, 10 * time.Second, 40, 10 * time.Second, ""},
		{-1, 0, 0, DefaultOrderBudgetWindow, ""},
		{maxOrderBudget + 1, 0, 0, 0, "OrderBudget: 1000001 is more than the maximum"},
		{10, 500 * time.Millisecond, 0, 0, "OrderBudgetWindow: 500ms is shorter than the minimum"},
		{10, 8 * 24 * time.Hour, 0, 0, "OrderBudgetWindow: 192h0m0s is longer than the maximum"},
	}
	for _, tt := range tests {
		c := Config{OrderBudget: tt.budget, OrderBudgetWindow: tt.window}
		n, w, err := c.checkOrderBudget()
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%d per %v: error %v, want %q", tt.budget, tt.window, err, tt.err)
		case tt.err == "" && (err != nil || n != tt.want || w != tt.wantWin):
			t.Errorf("%d per %v: %d per %v (%v), want %d per %v", tt.budget, tt.window, n, w, err, tt.want, tt.wantWin)
		}
	}
}

// TestBackoffRecordedByOneMemberHoldsAnother: a member that the CA
// rate-limits records the time in the shared storage; another member's
// gate then refuses to order until that time, with ErrCABackoff, and lets
// orders go after it.
func TestBackoffRecordedByOneMemberHoldsAnother(t *testing.T) {
	store := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	log := slog.New(slog.DiscardHandler)
	a := newCAGate(store, "a", log, 0, time.Hour)
	b := newCAGate(store, "b", log, 0, time.Hour)
	a.now, b.now = clock, clock
	acct := caAccount{issuer: "ca.test-dir", email: "ops@example.test"}
	ctx := context.Background()
	until := now.Add(90 * time.Second)
	a.noteResult(ctx, acct, "x.example.test", fmt.Errorf("obtain: %w", acme.Problem{Type: acme.ProblemTypeRateLimited, Status: 429,
		Detail: "too many new orders from this account, retry after " + until.Format("2006-01-02 15:04:05 UTC")}))
	err := b.check(ctx, acct, "y.example.test", false)
	var we *WaitError
	if !errors.Is(err, ErrCABackoff) || !errors.As(err, &we) || !we.Until.Equal(until) {
		t.Fatalf("b.check during the CA's back-off: %v, want ErrCABackoff until %v", err, until)
	}
	if err := b.check(ctx, acct, "y.example.test", true); err != nil {
		t.Fatalf("with another CA to fail over to: %v, want the attempt to go on", err)
	}
	now = until
	if err := b.check(ctx, acct, "y.example.test", false); err != nil {
		t.Fatalf("b.check at the end of the back-off: %v", err)
	}
}

// TestRepeatedServerErrorsHoldTheFleet: server errors hold the fleet back
// only after several attempts in a row; a success in between resets the
// count.
func TestRepeatedServerErrorsHoldTheFleet(t *testing.T) {
	store := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := newCAGate(store, "a", slog.New(slog.DiscardHandler), 0, time.Hour)
	g.now = func() time.Time { return now }
	acct := caAccount{issuer: "ca.test-dir", email: "ops@example.test"}
	ctx := context.Background()
	fail := acme.Problem{Type: acme.ProblemTypeServerInternal, Status: 500}
	for range serverErrors - 1 {
		g.noteResult(ctx, acct, "x", fail)
	}
	g.noteResult(ctx, acct, "x", nil)
	g.noteResult(ctx, acct, "x", fail)
	if err := g.check(ctx, acct, "x", false); err != nil {
		t.Fatalf("held back after server errors with a success between them: %v", err)
	}
	for range serverErrors - 1 {
		g.noteResult(ctx, acct, "x", fail)
	}
	if err := g.check(ctx, acct, "x", false); !errors.Is(err, ErrCABackoff) {
		t.Fatalf("after %d server errors in a row: %v, want ErrCABackoff", serverErrors, err)
	}
}
