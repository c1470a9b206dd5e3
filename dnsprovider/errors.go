package dnsprovider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StatusError is an error response from a provider's HTTP API. Provider
// packages return it (wrapped or not) so that WithRetry can tell transient
// errors from permanent ones and honour Retry-After. It never holds credentials.
type StatusError struct {
	StatusCode int           // HTTP status code
	Code       string        // provider's error code, e.g. "Throttling" or "10000"; may be empty
	Message    string        // provider's error message; may be empty
	RetryAfter time.Duration // from a Retry-After header; zero when absent
	Err        error         // the provider library's own error, if any
}

// Error describes the failure: status, provider error code and message.
func (e *StatusError) Error() string {
	var b strings.Builder
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			b.WriteString(" " + t)
		}
		if e.Code != "" {
			b.WriteString(" (" + e.Code + ")")
		}
	} else {
		b.WriteString(cmp.Or(e.Code, "provider error"))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the provider library's error.
func (e *StatusError) Unwrap() error { return e.Err }

// OpError is returned by the wrappers when a provider call fails: it names the
// provider, the operation and the zone, and says whether the cause was
// transient (and retries ran out) or permanent.
type OpError struct {
	Provider  string // e.g. "cloudflare"
	Op        string // "append", "delete", "set", "get" or "list"
	Zone      string // empty for "list"
	Attempts  int    // calls made, the first included
	Temporary bool   // whether the last error was transient
	Err       error  // the last error
}

// Error names the provider, operation and zone, and the cause.
func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider + ": " + e.Op)
	if e.Zone != "" {
		fmt.Fprintf(&b, " in zone %q", e.Zone)
	}
	switch {
	case e.Temporary && e.Attempts > 1:
		fmt.Fprintf(&b, ": still failing after %d attempts", e.Attempts)
	case e.Temporary:
		b.WriteString(": transient error, not retried")
	default:
		b.WriteString(": permanent error")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the last error.
func (e *OpError) Unwrap() error { return e.Err }

// transientCodes are provider error codes that mean "try again later",
// whatever the HTTP status (Route 53 throttles with HTTP 400).
var transientCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "ThrottledException": true,
	"RequestThrottled": true, "RequestThrottledException": true, "TooManyRequestsException": true,
	"RequestLimitExceeded": true, "SlowDown": true, "PriorRequestNotComplete": true,
	"RequestTimeout": true, "RequestTimeoutException": true, "ServiceUnavailable": true,
	"InternalError": true, "InternalFailure": true,
	"971": true, // Cloudflare: "Please wait and consider throttling your request speed"
}

func transientStatus(code int) bool {
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return true
	case code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported:
		return true
	}
	return false
}

// httpStatusText matches the status that libdns providers commonly put in
// their error text ("got error status: HTTP 429: ...").
var httpStatusText = regexp.MustCompile(`\bHTTP (?:status )?([1-5][0-9]{2})\b`)

// IsTransientAPIError reports whether err, returned by a call to a DNS
// provider's API, is worth retrying: HTTP 429, 408 and 5xx responses,
// throttling error codes (AWS "Throttling", "PriorRequestNotComplete", ...),
// network timeouts, refused, reset or closed connections, answers cut short.
// Errors it does not recognise are permanent, as are cancellations.
func IsTransientAPIError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) && (se.StatusCode != 0 || se.Code != "") {
		return transientCodes[se.Code] || transientStatus(se.StatusCode)
	}
	// Errors of SDKs that were not converted to StatusError (smithy's
	// APIError and ResponseError have these methods). A status of 0 means
	// no answer came: the network checks below apply.
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) && transientCodes[coded.ErrorCode()] {
		return true
	}
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && status.HTTPStatusCode() != 0 {
		return transientStatus(status.HTTPStatusCode())
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	msg := err.Error()
	if m := httpStatusText.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[1])
		return transientStatus(code)
	}
	return strings.Contains(msg, "retry quota exceeded") || strings.Contains(msg, "connection reset by peer") ||
		errors.Is(err, io.EOF)
}

// RetryAfter returns how long the provider asked the caller to wait before
// trying again, if err carries that (a StatusError with RetryAfter set, or
// any error in the chain with a RetryAfter() time.Duration method).
func RetryAfter(err error) (time.Duration, bool) {
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return se.RetryAfter, true
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		if d := ra.RetryAfter(); d > 0 {
			return d, true
		}
	}
	return 0, false
}

// ParseRetryAfter reads a Retry-After header value, in seconds or as an HTTP
// date relative to now. It returns zero for an absent, malformed or past
// value.
func ParseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(value); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
