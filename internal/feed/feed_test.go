package feed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/leakcheck"
)

func TestBroadcastReachesEverySubscriberInOrder(t *testing.T) {
	var h Hub
	defer h.Close()
	ctx := context.Background()
	a, _ := h.Subscribe(ctx)
	b, _ := h.Subscribe(ctx)
	for _, k := range []string{"x", "y"} {
		h.Broadcast(k)
	}
	for _, ch := range []<-chan string{a, b} {
		for _, want := range []string{"x", "y"} {
			if got := <-ch; got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
}

func TestOverflowCollapsesIntoReload(t *testing.T) {
	var h Hub
	defer h.Close()
	ch, _ := h.Subscribe(context.Background())
	// Nobody reads: the delivering goroutine holds at most one batch, the
	// rest overflows the backlog.
	const sent = 3 * Backlog
	for range sent {
		h.Broadcast("k")
	}
	n := 0
	for k := range ch { // an overflow drops keys, and says so with ""
		n++
		if k == "" {
			break
		}
	}
	if n >= sent {
		t.Fatalf("the reload signal came after %d keys, want fewer than the %d sent", n, sent)
	}
}

func TestCancelAndCloseEndSubscriptions(t *testing.T) {
	before := leakcheck.Take()
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := h.Subscribe(ctx)
	b, _ := h.Subscribe(context.Background())
	cancel()
	if _, ok := <-a; ok {
		t.Fatal("channel open after its context ended")
	}
	h.Close()
	if _, ok := <-b; ok {
		t.Fatal("channel open after Close")
	}
	if _, err := h.Subscribe(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
	before.Check(t, 5*time.Second)
}
