package dnsprovider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"
)

type apiErr struct {
	code   string
	status int
}

func (e apiErr) Error() string       { return e.code }
func (e apiErr) ErrorCode() string   { return e.code }
func (e apiErr) HTTPStatusCode() int { return e.status }

// sdkNoAnswer is like smithy's ResponseError for a request that got no
// answer: status 0.
type sdkNoAnswer struct{ err error }

func (e sdkNoAnswer) Error() string       { return "https response error StatusCode: 0: " + e.err.Error() }
func (e sdkNoAnswer) HTTPStatusCode() int { return 0 }
func (e sdkNoAnswer) Unwrap() error       { return e.err }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsTransientAPIErrorClassifiesProviderErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"429", &StatusError{StatusCode: 429}, true},
		{"500", &StatusError{StatusCode: 500}, true},
		{"503 wrapped", fmt.Errorf("x: %w", &StatusError{StatusCode: 503}), true},
		{"501", &StatusError{StatusCode: 501}, false},
		{"401", &StatusError{StatusCode: 401}, false},
		{"403", &StatusError{StatusCode: 403}, false},
		{"404", &StatusError{StatusCode: 404}, false},
		{"AWS Throttling is HTTP 400", &StatusError{StatusCode: 400, Code: "Throttling"}, true},
		{"AWS PriorRequestNotComplete", &StatusError{StatusCode: 400, Code: "PriorRequestNotComplete"}, true},
		{"AWS InvalidChangeBatch", &StatusError{StatusCode: 400, Code: "InvalidChangeBatch"}, false},
		{"SDK error with throttling code", apiErr{"Throttling", 400}, true},
		{"SDK error with 502", apiErr{"Unknown", 502}, true},
		{"SDK error NoSuchHostedZone", apiErr{"NoSuchHostedZone", 404}, false},
		{"SDK error without an answer", fmt.Errorf("send failed: %w", sdkNoAnswer{io.EOF}), true},
		{"libdns text HTTP 429", errors.New("got error status: HTTP 429: [{971 slow}]"), true},
		{"libdns text HTTP 403", errors.New("got error status: HTTP 403: [{9109 Invalid}]"), false},
		{"timeout", &url.Error{Op: "Get", URL: "u", Err: timeoutErr{}}, true},
		{"deadline of an inner timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"connection reset", &url.Error{Op: "Post", URL: "u", Err: syscall.ECONNRESET}, true},
		{"server hung up", &url.Error{Op: "Post", URL: "u", Err: io.EOF}, true},
		{"connection closed while sending", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "write", Err: net.ErrClosed}}, true},
		{"canceled", context.Canceled, false},
		{"unknown zone", errors.New("expected 1 zone, got 0 for example.com"), false},
		{"nil", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTransientAPIError(tc.err); got != tc.want {
				t.Fatalf("IsTransientAPIError(%v) = %t, want %t", tc.err, got, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999", 24 * time.Hour},
	}
	for _, tc := range cases {
		if got := ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRetryAfterReadsStatusError(t *testing.T) {
	err := fmt.Errorf("x: %w", &StatusError{StatusCode: 429, RetryAfter: 2 * time.Second})
	if d, ok := RetryAfter(err); !ok || d != 2*time.Second {
		t.Fatalf("RetryAfter = %s, %t", d, ok)
	}
	if _, ok := RetryAfter(errors.New("x")); ok {
		t.Fatal("RetryAfter found a value in a plain error")
	}
}
