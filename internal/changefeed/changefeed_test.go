package changefeed

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/leakcheck"
)

func TestSlowSubscriberGetsReloadInsteadOfUnboundedBacklog(t *testing.T) {
	s := &sub{out: make(chan string), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	for i := range Backlog + 1 {
		s.push(string(rune('a' + i%26)))
	}
	if len(s.queue) != 1 || s.queue[0] != "" {
		t.Fatalf("backlog after overflow = %d keys starting %q, want just \"\"", len(s.queue), s.queue[:1])
	}
}

func TestUnreadSubscriberGetsReloadAfterOverflow(t *testing.T) {
	h := &Hub{}
	defer h.Close()
	ch, err := h.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads: the delivering goroutine holds at most one batch, the
	// rest overflows the backlog.
	const sent = 3 * Backlog
	for range sent {
		h.Publish("k")
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

func TestEverySubscriberGetsEveryKeyInOrder(t *testing.T) {
	var h Hub
	defer h.Close()
	ctx := t.Context()
	a, err := h.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"x", "y/z", ""}
	for _, k := range keys {
		h.Publish(k)
	}
	for _, ch := range []<-chan string{a, b} {
		for _, want := range keys {
			select {
			case got := <-ch:
				if got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no key within 10s, want %q", want)
			}
		}
	}
}

func TestCloseEndsSubscriptionsAndTheirGoroutines(t *testing.T) {
	before := leakcheck.Take()
	var h Hub
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := h.Subscribe(ctx)
	b, _ := h.Subscribe(ctx)
	h.Publish("pending") // never received
	h.Close()
	for _, ch := range []<-chan string{a, b} {
		for range ch {
		}
	}
	if _, err := h.Subscribe(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
	before.Check(t, 10*time.Second)
}

func TestContextEndsOneSubscription(t *testing.T) {
	var h Hub
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a, _ := h.Subscribe(ctx)
	b, _ := h.Subscribe(t.Context())
	cancel()
	for range a {
	}
	h.Publish("k")
	select {
	case got := <-b:
		if got != "k" {
			t.Fatalf("got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other subscription stopped receiving")
	}
}
