package fleettest_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
)

const (
	budgetNames  = 200
	budgetOrders = 40
	budgetWindow = 10 * time.Second
	// budgetLimit is how long the CA rate-limits new orders, from the
	// moment the first window's orders are placed: past the start of the
	// second window, so that members meet it.
	budgetLimit = 15 * time.Second
	// inFlight bounds the time an order already past a member's gate when
	// the CA first answers 429 takes to reach the CA, and the 429 to be
	// recorded in storage: the only new orders the CA may see after its
	// first 429 and before its Retry-After. It is a bound on causality on
	// a loaded machine, not a measurement.
	inFlight = 2 * time.Second
)

// TestFleetOrderBudgetAndCARateLimit starts five members on one storage
// with 200 names, a budget of 40 orders per 10 s, and a CA that answers
// new orders with 429 and a Retry-After for 15 s once the first 40 are
// placed: in no window of 10 s does the CA see more than 40 new-order
// requests; after its first 429 (and the orders already on their way) no
// member sends a new order before the time it gave; every member serves
// every name in the end, with one order per name.
func TestFleetOrderBudgetAndCARateLimit(t *testing.T) {
	t.Parallel()
	env := fleettest.NewEnv(t, testacme.Options{})
	w := env.World
	names := make([]string, budgetNames)
	for i := range names {
		names[i] = fmt.Sprintf("b%03d.example.test", i)
	}
	spec := env.Spec(backendtest.File(t).URL, names...)
	spec.OrderBudget, spec.OrderBudgetWindow = budgetOrders, budgetWindow
	ms := env.StartMembers(t, 5, spec)
	began := time.Now()
	fleettest.StartTogether(t, ms...)

	wait.For(t, time.Minute, "the first window's orders", func() bool { return len(w.NewOrderRequests()) >= budgetOrders })
	until := w.RateLimitNewOrders(time.Now().Add(budgetLimit))
	for _, m := range ms {
		m.AwaitReady(t, 10*time.Minute)
	}
	t.Logf("%d names served by 5 members %v after start", len(names), time.Since(began).Round(time.Millisecond))

	reqs := w.NewOrderRequests()
	slices.SortFunc(reqs, func(a, b testacme.NewOrderRequest) int { return a.At.Compare(b.At) })
	var times []time.Time
	first429 := time.Time{}
	for _, r := range reqs {
		times = append(times, r.At)
		if r.Status == http.StatusTooManyRequests && first429.IsZero() {
			first429 = r.At
		}
	}
	if first429.IsZero() {
		t.Fatalf("no new-order request met the CA's rate limit (until %v); requests: %d", until, len(reqs))
	}
	most, at := 0, time.Time{}
	for i := range times {
		j, _ := slices.BinarySearchFunc(times, times[i].Add(budgetWindow), func(a, b time.Time) int { return a.Compare(b) })
		if j-i > most {
			most, at = j-i, times[i]
		}
	}
	t.Logf("%d new-order requests (%d answered 429 from %v); at most %d in a window of %v (from +%v)",
		len(reqs), count429(reqs), first429.Sub(began).Round(time.Millisecond), most, budgetWindow, at.Sub(began).Round(time.Millisecond))
	logWindows(t, began, reqs)
	if most > budgetOrders {
		t.Errorf("%d new-order requests in the window of %v from +%v, budget %d", most, budgetWindow, at.Sub(began), budgetOrders)
	}
	for _, r := range reqs {
		if r.At.After(first429.Add(inFlight)) && r.At.Before(until) {
			t.Errorf("a new-order request at +%v, during the CA's Retry-After (first 429 at +%v, until +%v)",
				r.At.Sub(began), first429.Sub(began), until.Sub(began))
		}
	}
	if c := w.Counts(); c.Orders != len(names) {
		t.Errorf("%d orders created for %d names, want one each", c.Orders, len(names))
	}
	for _, m := range ms {
		for _, name := range names {
			if _, err := fleettest.ServedSerial(m, name, w.Roots()); err != nil {
				t.Fatalf("member %d: %v", m.ID, err)
			}
		}
	}
}

func count429(reqs []testacme.NewOrderRequest) int {
	n := 0
	for _, r := range reqs {
		if r.Status == http.StatusTooManyRequests {
			n++
		}
	}
	return n
}

// logWindows logs the new-order requests per second from began.
func logWindows(t *testing.T, began time.Time, reqs []testacme.NewOrderRequest) {
	t.Helper()
	per := map[int][2]int{}
	last := 0
	for _, r := range reqs {
		s := int(r.At.Sub(began) / time.Second)
		c := per[s]
		if r.Status == http.StatusTooManyRequests {
			c[1]++
		} else {
			c[0]++
		}
		per[s] = c
		last = max(last, s)
	}
	line := ""
	for s := 0; s <= last; s++ {
		if c := per[s]; c != [2]int{} {
			line += fmt.Sprintf(" +%ds:%d", s, c[0])
			if c[1] > 0 {
				line += fmt.Sprintf("(+%d×429)", c[1])
			}
		}
	}
	t.Logf("new-order requests per second:%s", line)
}
