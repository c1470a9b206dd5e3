// Package cloudapi is the HTTP side of certfleet's cloud DNS providers
// (Google Cloud DNS, Azure DNS): JSON requests authorised by an OAuth 2.0
// bearer token that is fetched once and reused until shortly before it
// expires, and error answers turned into *dnsprovider.StatusError (status,
// the cloud's error code and message, Retry-After) so that
// dnsprovider.WithRetry can tell transient errors from permanent ones.
//
// Secrets never leave through it: every message taken from an answer passes
// through Client.Redact, and request bodies are never quoted in errors.
package cloudapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
)

// HTTPClient sends HTTP requests; *http.Client is one.
type HTTPClient interface {
	Do(req *http.Request) (*http.Response, error)
}

// Token is an access token and when it expires.
type Token struct {
	Value   string
	Expires time.Time
}

// maxBody bounds the answers read, so that a broken or hostile endpoint
// cannot make the provider allocate without limit.
const maxBody = 16 << 20

// Client sends API requests with a bearer token.
type Client struct {
	// HTTP sends the requests.
	HTTP HTTPClient

	// Fetch obtains a new access token (see PostForm).
	Fetch func(ctx context.Context) (Token, error)

	// ParseError fills se.Code and se.Message from an error answer's body.
	ParseError func(body []byte, se *dnsprovider.StatusError)

	// AuthHint is appended to the message of 401 and 403 answers: what the
	// credentials need.
	AuthHint string

	// Redact removes secrets from a text taken from an answer.
	Redact func(string) string

	mu  sync.Mutex
	tok Token
}

// token returns the cached token, or fetches a new one when there is none
// or it expires within a minute. Concurrent callers wait for one fetch.
func (c *Client) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Value != "" && time.Until(c.tok.Expires) > time.Minute {
		return c.tok.Value, nil
	}
	tok, err := c.Fetch(ctx)
	if err != nil {
		return "", err
	}
	c.tok = tok
	return tok.Value, nil
}

// forget drops the cached token if it is still tok (after a 401: revoked or
// expired early).
func (c *Client) forget(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Value == tok {
		c.tok = Token{}
	}
}

// Do sends a request with the bearer token and a JSON body (in, unless
// nil), and decodes a JSON answer into out (unless nil). header adds request
// headers. An answer of 400 or more is a *dnsprovider.StatusError.
func (c *Client) Do(ctx context.Context, method, rawURL string, header http.Header, in, out any) (status int, err error) {
	tok, err := c.token(ctx)
	if err != nil {
		return 0, err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return 0, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	status, err = c.send(req, out)
	if status == http.StatusUnauthorized {
		c.forget(tok)
	}
	return status, err
}

// PostForm posts an OAuth 2.0 token request (RFC 6749 section 4) and
// decodes the answer into out; an error answer becomes a StatusError with
// the OAuth error code and description. The form (it holds the credentials)
// is never quoted.
func (c *Client) PostForm(ctx context.Context, rawURL string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	_, err = c.send(req, out)
	if err != nil {
		return fmt.Errorf("obtaining an access token from %s: %w", req.URL.Host, err)
	}
	return nil
}

func (c *Client) send(req *http.Request, out any) (int, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds no secret (tokens go in
		// headers, credentials in bodies).
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, c.statusError(resp, b)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding the answer (HTTP %d, %d bytes) of %s %s: %w", resp.StatusCode, len(b), req.Method, req.URL.Path, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *Client) statusError(resp *http.Response, body []byte) *dnsprovider.StatusError {
	se := &dnsprovider.StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: dnsprovider.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	switch {
	case json.Unmarshal(body, &oauth) == nil && oauth.Error != "":
		se.Code, se.Message = oauth.Error, oauth.Description
	case c.ParseError != nil:
		c.ParseError(body, se)
	}
	if c.Redact != nil {
		se.Code, se.Message = c.Redact(se.Code), c.Redact(se.Message)
	}
	if (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) && c.AuthHint != "" {
		se.Message = strings.TrimPrefix(se.Message+"; "+c.AuthHint, "; ")
	}
	return se
}

// Status returns the HTTP status of an API error (0 for other errors).
func Status(err error) int {
	var se *dnsprovider.StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// Protect runs f, turning a panic in it into an error and naming the
// provider, operation and zone in a *dnsprovider.OpError.
func Protect(provider, op, zone string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("unexpected failure: %v", v)
		}
		if err != nil {
			err = &dnsprovider.OpError{Provider: provider, Op: op, Zone: zone, Attempts: 1, Temporary: dnsprovider.IsTransientAPIError(err), Err: err}
		}
	}()
	return f()
}

// Redacted is how a secret shows in formatted values: "unset" or
// "[redacted]".
func Redacted(secret string) string {
	if secret == "" {
		return "unset"
	}
	return "[redacted]"
}

// CheckPrintable rejects whitespace, control and non-ASCII characters in a
// setting without showing its value: a stray newline from a secret file or
// a pasted space would otherwise fail only at the first API call.
func CheckPrintable(field, v string) error {
	for _, r := range v {
		if r <= ' ' || r >= 0x7f {
			return fmt.Errorf("%s contains whitespace, a control character or a non-ASCII character (a stray newline or space?)", field)
		}
	}
	return nil
}

// SameHost reports whether rawURL is an https URL on host: links an API
// returns for the next page are followed only to the API's own host, so
// that the bearer token goes nowhere else.
func SameHost(rawURL, host string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Scheme == "https" && u.User == nil && strings.EqualFold(u.Host, host)
}
