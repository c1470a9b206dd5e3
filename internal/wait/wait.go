// Package wait polls a condition with a deadline, for tests that must wait
// for something another goroutine or process does (instead of sleeping for
// a guessed time).
package wait

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backoff"
)

// pollSchedule spaces the calls of cond: fast at first, so that a test
// waits little for what happens quickly, backing off so that a long wait
// does not spin.
var pollSchedule = backoff.Policy{Base: 100 * time.Microsecond, Max: 50 * time.Millisecond}

// Until calls cond until it returns true or timeout passes, and reports
// whether it did. Between calls it waits 100 µs at first, doubling up to
// 50 ms (with jitter). It may be called from any goroutine.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for poll := 1; ; poll++ {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollSchedule.Delay(poll)) // poll interval
	}
}

// For fails t unless cond returns true within timeout; what names the
// awaited event in the failure message. Call it from the test's goroutine.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}
