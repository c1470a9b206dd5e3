package testacme

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/letsencrypt/pebble/v2/core"
)

// renewalInfoPath is where Pebble's WFE serves ACME Renewal Information
// (ARI) (unexported there).
const renewalInfoPath = "/draft-ietf-acme-ari-03/renewalInfo/"

// RenewalInfoRequest is one request for a certificate's renewal information.
type RenewalInfoRequest struct {
	// CertID is the ARI identifier of the certificate asked about.
	CertID string
	// At is when the CA received the request.
	At time.Time
}

// RenewalInfoRequests returns the requests for renewal information (ARI)
// the CA has received, in order.
func (w *World) RenewalInfoRequests() []RenewalInfoRequest {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	return slices.Clone(w.ariRequests)
}

// SetRenewalWindow makes the CA suggest that the certificate leaf, which it
// issued, be renewed between start and end: what it answers to every
// renewal information request for leaf from then on. By default the CA
// suggests a window around two thirds of the certificate's lifetime.
func (w *World) SetRenewalWindow(leaf *x509.Certificate, start, end time.Time) error {
	if leaf == nil {
		return errors.New("testacme: SetRenewalWindow: nil certificate")
	}
	if !start.Before(end) {
		return fmt.Errorf("testacme: SetRenewalWindow: start %v is not before end %v", start, end)
	}
	body, err := json.Marshal(core.RenewalInfo{SuggestedWindow: core.SuggestedWindow{Start: start.UTC(), End: end.UTC()}})
	if err != nil {
		return err
	}
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	if err := w.db.SetARIResponse(leaf.SerialNumber, string(body)); err != nil {
		return fmt.Errorf("testacme: SetRenewalWindow: %w", err)
	}
	return nil
}

// serveRenewalInfo passes a renewal information request to Pebble, records
// it, and replaces Pebble's Retry-After (6 hours) by Options.ARIRetryAfter
// when that is set. Called with wfeMu held.
func (w *World) serveRenewalInfo(rw http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		w.ariRequests = append(w.ariRequests, RenewalInfoRequest{
			CertID: strings.TrimPrefix(r.URL.Path, renewalInfoPath),
			At:     time.Now(),
		})
	}
	if w.ariRetryAfter > 0 {
		rw = &retryAfterWriter{ResponseWriter: rw, value: strconv.Itoa(int(w.ariRetryAfter / time.Second))}
	}
	w.wfe.ServeHTTP(rw, r)
}

// retryAfterWriter sets the Retry-After header of a response to value.
type retryAfterWriter struct {
	http.ResponseWriter
	value       string
	wroteHeader bool
}

func (r *retryAfterWriter) WriteHeader(status int) {
	if !r.wroteHeader {
		r.wroteHeader = true
		if r.Header().Get("Retry-After") != "" {
			r.Header().Set("Retry-After", r.value)
		}
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *retryAfterWriter) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(p)
}
