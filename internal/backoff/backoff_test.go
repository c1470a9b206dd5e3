package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNominalDoublesUpToMax(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := p.Nominal(i + 1); got != w*time.Millisecond {
			t.Errorf("Nominal(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := (Policy{}).Nominal(1000); got != time.Minute {
		t.Errorf("zero Policy Nominal(1000) = %v, want 1m", got)
	}
	if got := (Policy{Base: time.Minute, Max: time.Second}).Nominal(3); got != time.Minute {
		t.Errorf("Max below Base: Nominal(3) = %v, want Base", got)
	}
}

func TestDelayStaysWithinJitterBounds(t *testing.T) {
	p := Policy{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for n := 1; n <= 8; n++ {
		nom := p.Nominal(n)
		for range 200 {
			if d := p.Delay(n); d < nom/2 || d > nom {
				t.Fatalf("Delay(%d) = %v, outside [%v, %v]", n, d, nom/2, nom)
			}
		}
	}
	if Jitter(0) != 0 || Jitter(1) != 1 {
		t.Error("Jitter of 0 or 1 ns must be itself")
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Microsecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
