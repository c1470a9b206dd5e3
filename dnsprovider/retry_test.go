package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

// recordedSleep is a RetryPolicy.sleep that records the waits and does not
// wait.
type recordedSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recordedSleep) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return ctx.Err()
}

func fastPolicy(rec *recordedSleep) RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond, sleep: rec.sleep}
}

var (
	errThrottled = &StatusError{StatusCode: 429, Code: "971", Message: "slow down"}
	errDenied    = &StatusError{StatusCode: 403, Code: "10000", Message: "Authentication error"}
)

func TestRetryRetriesTransientErrorsUntilSuccess(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", errThrottled, &StatusError{StatusCode: 503}, fmt.Errorf("wrapped: %w", context.DeadlineExceeded))
	var rec recordedSleep
	p := Retry(inner, fastPolicy(&rec))
	out, err := p.AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	if err != nil || len(out) != 1 {
		t.Fatalf("AppendRecords = %v, %v", out, err)
	}
	if inner.count("append") != 4 || len(rec.waits) != 3 {
		t.Fatalf("%d calls, %d waits; want 4 and 3", inner.count("append"), len(rec.waits))
	}
	for i, w := range rec.waits {
		if nominal := time.Millisecond << i; w < nominal/2 || w > min(nominal, 4*time.Millisecond) {
			t.Errorf("wait %d = %s, want between half and all of %s", i, w, nominal)
		}
	}
}

func TestRetryFailsFastOnPermanentErrorNamingProviderZoneAndCause(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("delete", errDenied)
	var rec recordedSleep
	_, err := Retry(inner, fastPolicy(&rec)).DeleteRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
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
	if inner.count("delete") != 1 || len(rec.waits) != 0 {
		t.Fatalf("%d calls, %d waits; want 1 call and no wait", inner.count("delete"), len(rec.waits))
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", &StatusError{StatusCode: 429, RetryAfter: 7 * time.Second})
	var rec recordedSleep
	policy := fastPolicy(&rec)
	if _, err := Retry(inner, policy).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")}); err != nil {
		t.Fatal(err)
	}
	if len(rec.waits) != 1 || rec.waits[0] != 7*time.Second {
		t.Fatalf("waits = %v, want [7s]: Retry-After beyond MaxDelay is still honoured", rec.waits)
	}
}

func TestRetryStopsWhenRetryAfterExceedsBudget(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.failNext("append", &StatusError{StatusCode: 429, RetryAfter: time.Hour})
	var rec recordedSleep
	_, err := Retry(inner, fastPolicy(&rec)).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	var oe *OpError
	if !errors.As(err, &oe) || !oe.Temporary || !strings.Contains(err.Error(), "MaxElapsed") || len(rec.waits) != 0 {
		t.Fatalf("err = %v, waits %v", err, rec.waits)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inner.failNext("append", &StatusError{StatusCode: 429, RetryAfter: 90 * time.Second})
	_, err = Retry(inner, fastPolicy(&rec)).AppendRecords(ctx, "example.com.", []libdns.Record{txt("x", "v")})
	if err == nil || !strings.Contains(err.Error(), "context deadline") || len(rec.waits) != 0 {
		t.Fatalf("err = %v, waits %v; want no wait past the context deadline", err, rec.waits)
	}
}

func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	inner := newScripted(t, "example.com.")
	for range 10 {
		inner.failNext("append", errThrottled)
	}
	var rec recordedSleep
	_, err := Retry(inner, fastPolicy(&rec)).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
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
	policy := RetryPolicy{BaseDelay: time.Second, sleep: func(ctx context.Context, d time.Duration) error {
		cancel()
		return sleepCtx(ctx, d)
	}}
	_, err := Retry(inner, policy).AppendRecords(ctx, "example.com.", []libdns.Record{txt("x", "v")})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errThrottled) || inner.count("append") != 1 {
		t.Fatalf("err = %v after %d calls; want canceled, wrapping the last error, 1 call", err, inner.count("append"))
	}
}

func TestRetriedAppendDoesNotDuplicateRecordsOfALostAnswer(t *testing.T) {
	inner := newScripted(t, "example.com.")
	inner.applyThenFail = true
	inner.failNext("append", &StatusError{StatusCode: 504})
	var rec recordedSleep
	recs := []libdns.Record{txt("x", "1"), txt("x", "2")}
	out, err := Retry(inner, fastPolicy(&rec)).AppendRecords(context.Background(), "example.com.", recs)
	if err != nil || len(out) != 2 {
		t.Fatalf("AppendRecords = %v, %v", out, err)
	}
	if inner.count("append") != 1 || inner.count("get") != 1 {
		t.Fatalf("appends %d, gets %d; want the retry to find both records present and append nothing", inner.count("append"), inner.count("get"))
	}
}

func TestRetryRetriesReadsAndSets(t *testing.T) {
	inner := newScripted(t, "example.com.")
	var rec recordedSleep
	p := Retry(inner, fastPolicy(&rec))
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
	var rec recordedSleep
	_, err := Retry(namedOp{inner}, fastPolicy(&rec)).AppendRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	if err == nil || strings.Count(err.Error(), "named") != 1 || !strings.HasPrefix(err.Error(), "named: append") {
		t.Fatalf("err = %v", err)
	}
}
