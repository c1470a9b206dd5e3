package testacme

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/letsencrypt/pebble/v2/acme"
)

// newOrderPath is where Pebble's WFE takes new orders (unexported there).
const newOrderPath = "/order-plz"

// Order is a new order the CA accepted.
type Order struct {
	// ID is the CA's identifier of the order.
	ID string
	// Replaces is the ARI identifier of the certificate the order replaces
	// (the ACME "replaces" field), or "" if the client sent none.
	Replaces string
	// At is when the CA accepted the order.
	At time.Time
}

// Orders returns the orders the CA has accepted, in order.
func (w *World) Orders() []Order {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	return slices.Clone(w.orders)
}

// RefuseNewOrders makes the CA answer every new-order request with a 503
// serverInternal problem while on is true, as a CA that is down for
// issuance (its directory and other resources still answer).
func (w *World) RefuseNewOrders(on bool) {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	w.refuse = on
}

// RateLimitNewOrders makes the CA answer every new-order request with a
// 429 rateLimited problem until the given time (rounded up to a whole
// second), as Let's Encrypt does when an account placed too many orders:
// with a Retry-After header and the time repeated in the problem detail
// ("retry after 2006-01-02 15:04:05 UTC"). A zero time ends it. It returns
// the time used.
func (w *World) RateLimitNewOrders(until time.Time) time.Time {
	if t := until.Truncate(time.Second); t.Before(until) {
		until = t.Add(time.Second)
	}
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	w.limitUntil = until
	return until
}

// NewOrderRequest is a new-order request the CA received.
type NewOrderRequest struct {
	// At is when the request arrived.
	At time.Time
	// Status is the HTTP status of the answer: 201 for an order created.
	Status int
}

// NewOrderRequests returns every new-order request the CA received,
// answered or refused, in the order they were answered.
func (w *World) NewOrderRequests() []NewOrderRequest {
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	return slices.Clone(w.newOrders)
}

// serveACME passes requests to Pebble's WFE one at a time, and records the
// orders and authorizations it creates and the renewal information asked
// for.
func (w *World) serveACME(rw http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	w.wfeMu.Lock()
	defer w.wfeMu.Unlock()
	if strings.HasPrefix(r.URL.Path, renewalInfoPath) {
		w.serveRenewalInfo(rw, r)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != newOrderPath {
		w.wfe.ServeHTTP(rw, r)
		return
	}
	req := NewOrderRequest{At: arrived}
	defer func() { w.newOrders = append(w.newOrders, req) }()
	if arrived.Before(w.limitUntil) {
		req.Status = http.StatusTooManyRequests
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.Header().Set("Retry-After", w.limitUntil.UTC().Format(http.TimeFormat))
		rw.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(rw, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders from this account, retry after %s","status":429}`,
			w.limitUntil.UTC().Format("2006-01-02 15:04:05 UTC"))
		return
	}
	if w.refuse {
		req.Status = http.StatusServiceUnavailable
		rw.Header().Set("Content-Type", "application/problem+json")
		rw.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(rw, `{"type":"urn:ietf:params:acme:error:serverInternal","detail":"the test CA refuses new orders","status":503}`)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !w.reuse {
		w.retireAuthorizations()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &recorder{ResponseWriter: rw, status: http.StatusOK}
	w.wfe.ServeHTTP(rec, r)
	req.Status = rec.status
	if rec.status != http.StatusCreated {
		return
	}
	var order struct {
		Authorizations []string `json:"authorizations"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &order); err != nil {
		return // the client sees the same malformed reply; nothing to count
	}
	id := path.Base(rec.Header().Get("Location"))
	w.orders = append(w.orders, Order{ID: id, Replaces: replaces(body), At: time.Now()})
	for _, u := range order.Authorizations {
		w.authzIDs[path.Base(u)] = struct{}{}
		w.reusable[path.Base(u)] = struct{}{}
	}
}

// retireAuthorizations hides from Pebble's reuse the valid authorizations
// of orders that are done (their certificate issued): it renames their
// identifier under .invalid, which nothing reads once the order is done
// (an order's status is computed from its authorizations' status and
// expiry only). Orders still in progress keep theirs. Called with wfeMu
// held; it never holds an authorization's lock and its order's together,
// which Pebble takes in the other order.
func (w *World) retireAuthorizations() {
	for id := range w.reusable {
		authz := w.db.GetAuthorizationByID(id)
		if authz == nil {
			delete(w.reusable, id)
			continue
		}
		authz.RLock()
		order, status := authz.Order, authz.Status
		authz.RUnlock()
		if status != acme.StatusValid && status != acme.StatusPending {
			delete(w.reusable, id) // failed: it never becomes valid
			continue
		}
		if status != acme.StatusValid || order == nil {
			continue
		}
		order.RLock()
		done := order.CertificateObject != nil
		order.RUnlock()
		if !done {
			continue
		}
		authz.Lock()
		authz.Identifier.Value = "retired-" + id + ".invalid"
		authz.Unlock()
		delete(w.reusable, id)
	}
}

// replaces returns the "replaces" field of a new-order request, a JWS whose
// payload (base64url) is the order; "" if there is none.
func replaces(jws []byte) string {
	var msg struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(jws, &msg) != nil {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(msg.Payload)
	if err != nil {
		return ""
	}
	var order struct {
		Replaces string `json:"replaces"`
	}
	if json.Unmarshal(payload, &order) != nil {
		return ""
	}
	return order.Replaces
}

// recorder passes a response through and keeps a copy of its status and
// body.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}
