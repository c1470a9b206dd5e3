package cloudflare

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
)

// statusClient turns Cloudflare error answers into *dnsprovider.StatusError
// before libdns/cloudflare sees them: libdns/cloudflare keeps neither the
// status nor Retry-After, and fails to decode the HTML pages of Cloudflare's
// edge (502, 503, ...).
type statusClient struct {
	next HTTPClient
}

func (c statusClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.do(req)
	if err != nil {
		if rec, ok := req.Context().Value(recorderKey{}).(*recorder); ok {
			rec.record(err)
		}
	}
	return resp, err
}

func (c statusClient) do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &dnsprovider.StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: dnsprovider.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
	var env struct {
		Errors []struct {
			Code       int    `json:"code"`
			Message    string `json:"message"`
			ErrorChain []struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error_chain"`
		} `json:"errors"`
	}
	// Cloudflare's messages describe the request, never the credentials
	// (the token is not echoed), so they are kept for the user.
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 {
		se.Code = strconv.Itoa(env.Errors[0].Code)
		var msgs []string
		for _, e := range env.Errors {
			m := e.Message
			for _, c := range e.ErrorChain {
				m += " (" + strconv.Itoa(c.Code) + ": " + c.Message + ")"
			}
			msgs = append(msgs, m)
		}
		se.Message = strings.Join(msgs, "; ")
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		se.Message = strings.TrimPrefix(se.Message+"; check that the API token is valid and has Zone.DNS:Edit permission on this zone", "; ")
	}
	return nil, se
}

// recorderKey is the context key of the recorder of a call's API errors.
type recorderKey struct{}

// recorder keeps the first API error of one call into libdns/cloudflare.
type recorder struct {
	mu  sync.Mutex
	err error
}

func (r *recorder) record(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

func (r *recorder) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
