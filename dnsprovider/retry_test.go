package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/internal/wait"
)

// fastPolicy retries quickly: tests wait milliseconds, not seconds.
var fastPolicy = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}

var (
	errThrottled = &StatusError{StatusCode: 429, Code: "971", Message: "slow down"}
	errDenied    = &StatusError{StatusCode: 403, Code: "10000", Message: "Authentication error"}
)

func TestRetryRetriesTransientErrorsUntilSuccess(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", errThrottled, &StatusError{StatusCode: 503}, fmt.Errorf("wrapped: %w", context.DeadlineExceeded))
	p := WithRetry(inner, fastPolicy)
	out, err := p.AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	if err != nil || len(out) != 1 {
		t.Fatalf("AppendRecords = %v, %v", out, err)
	}
	if inner.count("append") != 4 {
		t.Fatalf("%d calls, want 4", inner.count("append"))
	}
}

func TestRetryFailsFastOnPermanentErrorNamingProviderZoneAndCause(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("delete", errDenied)
	_, err := WithRetry(inner, fastPolicy).DeleteRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Temporary || oe.Attempts != 1 || oe.Op != "delete" || oe.Zone != "example.com." {
		t.Fatalf("err = %#v", err)
	}
	if !errors.Is(err, errDenied) {
		t.Error("the cause is not wrapped")
	}
	for _, w := range []string{"dnsprovider: delete in zone \"example.com.\"", "permanent error", "HTTP 403", "Authentication error"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if inner.count("delete") != 1 {
		t.Fatalf("%d calls, want 1", inner.count("delete"))
	}
}

func TestRetryHonoursRetryAfterBeyondMaxDelay(t *testing.T) {
	inner := newScripted(t, "example.com.")
	const retryAfter = 50 * time.Millisecond // far above fastPolicy.MaxDelay
	inner.failNext("append", &StatusError{StatusCode: 429, RetryAfter: retryAfter})
	if _, err := WithRetry(inner, fastPolicy).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")}); err != nil {
		t.Fatal(err)
	}
	calls := inner.callTimes("append")
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	// A timer never fires early: the retry came no sooner than asked.
	if gap := calls[1].Sub(calls[0]); gap < retryAfter {
		t.Fatalf("retried %v after a Retry-After of %v", gap, retryAfter)
	}
}

func TestRetryStopsWhenRetryAfterExceedsBudget(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", &StatusError{StatusCode: 429, RetryAfter: time.Hour})
	_, err := WithRetry(inner, fastPolicy).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	var oe *OpError
	if !errors.As(err, &oe) || !oe.Temporary || !strings.Contains(err.Error(), "MaxElapsed") || inner.count("append") != 1 {
		t.Fatalf("err = %v after %d calls; want the MaxElapsed budget named, no retry", err, inner.count("append"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inner.failNext("append", &StatusError{StatusCode: 429, RetryAfter: 90 * time.Second})
	_, err = WithRetry(inner, fastPolicy).AppendRecords(ctx, "example.com.", []libdns.Record{txt("x", "v")})
	if err == nil || !strings.Contains(err.Error(), "context deadline") || inner.count("append") != 2 {
		t.Fatalf("err = %v after %d calls in all; want no wait past the context deadline", err, inner.count("append"))
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	inner := newScripted(t, "example.com.")
	for range 10 {
		inner.failNext("append", errThrottled)
	}
	_, err := WithRetry(inner, fastPolicy).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	var oe *OpError
	if !errors.As(err, &oe) || !oe.Temporary || oe.Attempts != 5 || !strings.Contains(err.Error(), "still failing after 5 attempts") {
		t.Fatalf("err = %v", err)
	}
	if inner.count("append") != 5 {
		t.Fatalf("%d calls, want 5", inner.count("append"))
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", errThrottled, errThrottled)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Without the cancellation, the retry would come an hour later.
	policy := RetryPolicy{BaseDelay: time.Hour, MaxDelay: time.Hour, MaxElapsed: 2 * time.Hour}
	go func() {
		wait.Until(time.Minute, func() bool { return inner.count("append") > 0 })
		cancel()
	}()
	_, err := WithRetry(inner, policy).AppendRecords(ctx, "example.com.", []libdns.Record{txt("x", "v")})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errThrottled) || inner.count("append") != 1 {
		t.Fatalf("err = %v after %d calls; want canceled, wrapping the last error, 1 call", err, inner.count("append"))
	}
}

func TestRetriedAppendDoesNotDuplicateRecordsOfALostAnswer(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.applyThenFail = true
	inner.failNext("append", &StatusError{StatusCode: 504})
	recs := []libdns.Record{txt("x", "1"), txt("x", "2")}
	out, err := WithRetry(inner, fastPolicy).AppendRecords(context.Background(), "example.com.", recs)
	if err != nil || len(out) != 2 {
		t.Fatalf("AppendRecords = %v, %v", out, err)
	}
	if inner.count("append") != 1 || inner.count("get") != 1 {
		t.Fatalf("appends %d, gets %d; want the retry to find both records present and append nothing", inner.count("append"), inner.count("get"))
	}
}

func TestRetryRetriesReadsAndSets(t *testing.T) {
	inner := newScripted(t, "example.com.")
	p := WithRetry(inner, fastPolicy)
	ctx := context.Background()
	inner.failNext("get", errThrottled)
	if _, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}
	inner.failNext("set", errThrottled)
	if _, err := p.(libdns.RecordSetter).SetRecords(ctx, "example.com.", []libdns.Record{txt("x", "v")}); err != nil {
		t.Fatal(err)
	}
	inner.failNext("list", errThrottled)
	if _, err := p.(libdns.ZoneLister).ListZones(ctx); err != nil {
		t.Fatal(err)
	}
	if inner.count("get") != 2 || inner.count("set") != 2 || inner.count("list") != 2 {
		t.Fatalf("calls = %v", inner.calls)
	}
}

// namedOp fails like certfleet's own providers: with an *OpError.
type namedOp struct{ *scripted }

func (n namedOp) ProviderName() string { return "named" }

func TestRetryDoesNotNameTheProviderTwice(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", &OpError{Provider: "named", Op: "append", Zone: "example.com.", Attempts: 1, Temporary: true, Err: errThrottled}, errDenied)
	_, err := WithRetry(namedOp{inner}, fastPolicy).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	if err == nil || strings.Count(err.Error(), "named") != 1 || !strings.HasPrefix(err.Error(), "named: append") {
		t.Fatalf("err = %v", err)
	}
}

func TestHasRetryFindsARetryingProviderThroughWrappers(t *testing.T) {
	inner := newScripted(t, "example.com.")
	discard := slog.New(slog.DiscardHandler)
	for name, p := range map[string]Provider{
		"WithRetry":            WithRetry(inner, RetryPolicy{}),
		"Audit of Guard of it": Audit(Guard(WithRetry(inner, RetryPolicy{}), "example.com"), discard),
	} {
		if !HasRetry(p) {
			t.Errorf("HasRetry(%s) = false", name)
		}
	}
	for name, p := range map[string]Provider{
		"bare":     inner,
		"Audit":    Audit(inner, discard),
		"nil":      nil,
		"Guard(p)": Guard(inner, "example.com"),
	} {
		if HasRetry(p) {
			t.Errorf("HasRetry(%s) = true", name)
		}
	}
}
