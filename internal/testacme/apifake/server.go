package apifake

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// Backend is where a fake keeps its zones and records: any libdns provider
// that can list zones and get, append and delete records. A backend that also
// implements libdns.RecordSetter is used for atomic record set replacement.
type Backend interface {
	libdns.RecordGetter
	libdns.RecordAppender
	libdns.RecordDeleter
	libdns.ZoneLister
}

// Faults makes a fake answer some requests with errors.
type Faults struct {
	// Rate is the fraction (0 to 1) of requests answered with an injected
	// transient error (throttling, server error, or a connection closed
	// without an answer) instead of being processed.
	Rate float64

	// LostRate is the fraction (0 to 1) of the remaining write requests
	// that are applied but answered with a server error, as when a response
	// is lost: a client that retries must not apply the write twice.
	LostRate float64

	// Seed seeds the random choices, so that a run can be reproduced.
	Seed uint64

	// RetryAfter is sent in the Retry-After header of injected 429 answers
	// (Cloudflare), in whole seconds rounded up; zero sends "0".
	RetryAfter time.Duration
}

// Stats counts what a fake received.
type Stats struct {
	Requests int            // every request received
	Faults   int            // answered with an injected fault (lost writes included)
	Rejected int            // refused for missing or bad credentials
	Ops      map[string]int // requests processed, by API operation (e.g. "CreateRecord", "ChangeResourceRecordSets")
}

// server is the part common to the fakes: the HTTP server, the counters
// and the fault injection.
type server struct {
	srv *httptest.Server

	mu       sync.Mutex
	faults   Faults
	rng      *rand.Rand
	forced   []forcedFault
	stats    Stats
	pageSize int // SetPageSize's cap, 0 for the real API's

	write sync.Mutex // serializes writes to the backend
}

type forcedFault struct {
	status int
	code   string
}

// injector answers r with an injected fault of the given kind (or the
// forced one, kind -1) in the way of one fake's API.
type injector func(w http.ResponseWriter, r *http.Request, kind int, forced forcedFault)

// start serves h, after counting each request and answering it with a fault
// from inject instead when one is due (see pickFault).
func (s *server) start(h http.Handler, inject injector) {
	s.rng = rand.New(rand.NewPCG(0, 0))
	s.stats.Ops = make(map[string]int)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.countRequest()
		if kind, forced, ok := s.pickFault(); ok {
			inject(w, r, kind, forced)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// failNext queues n forced faults.
func (s *server) failNext(n int, forced forcedFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.forced = append(s.forced, forced)
	}
}

// SetPageSize caps the items per page of list operations; zero restores
// the real API's page sizes (see each fake).
func (s *server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = max(n, 0)
}

// pageSizeOr returns the page size set with SetPageSize, or def when none
// is.
func (s *server) pageSizeOr(def int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pageSize > 0 {
		return s.pageSize
	}
	return def
}

// client returns an http.Client that sends its requests through rt (a
// fake's Transport).
func client(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, Timeout: time.Minute}
}

// URL returns the fake's base URL (http://127.0.0.1:port).
func (s *server) URL() string { return s.srv.URL }

// Close shuts the fake down, waiting for requests in flight.
func (s *server) Close() { s.srv.Close() }

// SetFaults sets the fault injection; the zero Faults turns it off.
func (s *server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Rate = min(max(f.Rate, 0), 1)
	f.LostRate = min(max(f.LostRate, 0), 1)
	s.faults = f
	s.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
}

// Stats returns a copy of the counters.
func (s *server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Ops = make(map[string]int, len(s.stats.Ops))
	for k, v := range s.stats.Ops {
		st.Ops[k] = v
	}
	return st
}

// ResetStats zeroes the counters.
func (s *server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{Ops: make(map[string]int)}
}

func (s *server) countRequest() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
}

func (s *server) countRejected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Rejected++
}

func (s *server) countOp(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Ops[op]++
}

// fault kinds, chosen at random among those a fake offers.
const (
	faultThrottle = iota
	faultServerError
	faultBadGateway
	faultUnavailable
	faultHangUp
	numFaults
)

// pickFault decides whether to inject a fault into this request: a forced
// fault first, then one at random with probability Rate. ok is false for no
// fault.
func (s *server) pickFault() (kind int, forced forcedFault, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.forced) > 0 {
		forced = s.forced[0]
		s.forced = s.forced[1:]
		s.stats.Faults++
		return -1, forced, true
	}
	if s.faults.Rate > 0 && s.rng.Float64() < s.faults.Rate {
		s.stats.Faults++
		return s.rng.IntN(numFaults), forcedFault{}, true
	}
	return 0, forcedFault{}, false
}

// loseWrite decides whether to answer an applied write with an error.
func (s *server) loseWrite() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.LostRate > 0 && s.rng.Float64() < s.faults.LostRate {
		s.stats.Faults++
		return true
	}
	return false
}

// lostAnswer decides whether to answer an applied write as if the
// response was lost (see loseWrite), and if so answers it: with a
// connection closed without an answer, or, when errorAnswer is not nil, at
// random with that or errorAnswer (the API's server error).
func (s *server) lostAnswer(w http.ResponseWriter, errorAnswer func(http.ResponseWriter)) bool {
	if !s.loseWrite() {
		return false
	}
	hang := true
	if errorAnswer != nil {
		s.mu.Lock()
		hang = s.rng.IntN(2) == 0
		s.mu.Unlock()
	}
	if hang {
		hangUp(w)
	} else {
		errorAnswer(w)
	}
	return true
}

func (s *server) retryAfterSeconds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int((s.faults.RetryAfter + time.Second - 1) / time.Second)
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	http.Error(w, "connection closed", http.StatusBadGateway)
}

// redirect returns an http.RoundTripper that sends requests for the given
// hosts (the real API's) to the fake and refuses every other host, so that
// no test request leaves the machine.
func (s *server) redirect(hosts ...string) http.RoundTripper {
	target, _ := url.Parse(s.srv.URL)
	return &redirect{hosts: hosts, target: target, next: s.srv.Client().Transport}
}

// redirect rewrites requests for some hosts to a test server.
type redirect struct {
	hosts  []string
	target *url.URL
	next   http.RoundTripper
}

func (t *redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if !slices.ContainsFunc(t.hosts, func(h string) bool { return strings.EqualFold(req.URL.Hostname(), h) }) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("apifake: refusing to send a test request to %s (only %s go to the fake)", req.URL.Host, strings.Join(t.hosts, ", "))
	}
	r := req.Clone(req.Context())
	r.URL.Scheme = t.target.Scheme
	r.URL.Host = t.target.Host
	r.Host = t.target.Host
	return t.next.RoundTrip(r)
}

// backendCtx bounds backend calls made on behalf of a request.
func backendCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}
