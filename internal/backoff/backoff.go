// Package backoff is certfleet's one retry schedule: exponential backoff with
// jitter, used by every loop that waits before trying again (the Manager's
// retries of names, DNS provider and storage retries, lock polling, tests
// waiting for a condition).
//
// Jitter keeps a fleet that failed together from retrying together: each
// wait is drawn from [d/2, d], where d is the nominal delay, which doubles
// from Policy.Base at each attempt up to Policy.Max.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a backoff schedule. The zero value waits from 1 s doubling to
// 1 minute.
type Policy struct {
	// Base is the nominal delay before the first retry. Zero or less means
	// 1 s.
	Base time.Duration
	// Max caps the nominal delay. Zero or less means 1 minute; a Max below
	// Base means Base.
	Max time.Duration
}

// Nominal returns the un-jittered delay before retry n (n = 1 is the first
// retry): Base doubled n-1 times, capped at Max.
func (p Policy) Nominal(n int) time.Duration {
	base, limit := p.Base, p.Max
	if base <= 0 {
		base = time.Second
	}
	if limit <= 0 {
		limit = time.Minute
	}
	limit = max(limit, base)
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Delay returns the wait before retry n (n = 1 is the first retry): a random
// duration in [Nominal(n)/2, Nominal(n)].
func (p Policy) Delay(n int) time.Duration {
	return Jitter(p.Nominal(n))
}

// Jitter returns a random duration in [d/2, d]; d itself when d <= 1.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d, or until ctx ends, in which case it returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
