package tlsauto

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/storage"
)

// Stats are a Manager's counters since New, for monitoring: the metrics
// package turns them into Prometheus metrics. Label values are bounded:
// operation and endpoint names, results and status codes; never a secret,
// a serial or a record value.
type Stats struct {
	// Handshakes counts GetCertificate calls by result.
	Handshakes HandshakeCounts

	// Obtains counts finished obtain and renewal attempts (certmagic's),
	// by kind and result; ObtainDuration is their duration.
	Obtains        []ObtainCount
	ObtainDuration Histogram

	// DNSRequests counts calls to the DNS provider (after retries are
	// split into their attempts), by provider, operation and result.
	DNSRequests []DNSRequestCount
	// Propagation is the time from a challenge record being written to
	// every checked nameserver serving it.
	Propagation Histogram

	// ACMERequests counts HTTP requests to the CA, by endpoint and status.
	ACMERequests []ACMERequestCount

	// StorageOps counts storage operations by operation and result;
	// LockWait is the time Lock calls took.
	StorageOps []StorageOpCount
	LockWait   Histogram

	// SyncLag is the time from a certificate being stored by another
	// member (or this one) to this Manager serving it from storage.
	SyncLag Histogram
}

// HandshakeCounts counts GetCertificate calls.
type HandshakeCounts struct {
	Served      uint64 // a certificate was returned
	UnknownName uint64 // the server name is not managed (or not served)
	NoSNI       uint64 // the client sent no server name
}

// ObtainCount is a number of obtain or renewal attempts.
type ObtainCount struct {
	Renewal bool
	Result  string // "success" or "failure"
	Count   uint64
}

// DNSRequestCount is a number of DNS provider calls.
type DNSRequestCount struct {
	Provider  string
	Operation string // "append", "delete", "set", "get", "list"
	Result    string // "success" or "error"
	Count     uint64
}

// ACMERequestCount is a number of HTTP requests to the CA.
type ACMERequestCount struct {
	Endpoint string // "directory", "new-nonce", "new-account", "new-order", "authorization", "challenge", "finalize", "order", "certificate", "renewal-info", "other"
	Status   string // the HTTP status code, such as "201"
	Count    uint64
}

// StorageOpCount is a number of storage operations.
type StorageOpCount struct {
	Operation string // "store", "load", "delete", "exists", "list", "stat", "lock", "unlock"
	Result    string // "success", "not_found" or "error"
	Count     uint64
}

// Histogram is a distribution of durations in seconds, with cumulative
// bucket counts (Prometheus's form).
type Histogram struct {
	Count   uint64
	Sum     float64 // seconds
	Buckets []Bucket
}

// Bucket is the number of observations at most UpperBound seconds.
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Stats returns a snapshot of the Manager's counters.
func (m *Manager) Stats() Stats {
	st := &m.stats
	s := Stats{
		Handshakes: HandshakeCounts{
			Served:      st.served.Load(),
			UnknownName: st.unknown.Load(),
			NoSNI:       st.noSNI.Load(),
		},
		ObtainDuration: st.obtainDur.snapshot(),
		Propagation:    st.propagation.snapshot(),
		LockWait:       st.lockWait.snapshot(),
		SyncLag:        st.syncLag.snapshot(),
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, k := range slices.SortedFunc(maps.Keys(st.obtains), obtainKey.Compare) {
		s.Obtains = append(s.Obtains, ObtainCount{Renewal: k.renewal, Result: k.result, Count: st.obtains[k]})
	}
	for _, k := range sortedKeys(st.dns) {
		s.DNSRequests = append(s.DNSRequests, DNSRequestCount{Provider: k[0], Operation: k[1], Result: k[2], Count: st.dns[k]})
	}
	for _, k := range sortedKeys(st.acme) {
		s.ACMERequests = append(s.ACMERequests, ACMERequestCount{Endpoint: k[0], Status: k[1], Count: st.acme[k]})
	}
	for _, k := range sortedKeys(st.storage) {
		s.StorageOps = append(s.StorageOps, StorageOpCount{Operation: k[0], Result: k[1], Count: st.storage[k]})
	}
	return s
}

func sortedKeys[K [2]string | [3]string](m map[K]uint64) []K {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return keys
}

// stats is where a Manager counts. The handshake counters are atomics (the
// handshake path takes no lock); the rest are under mu.
type stats struct {
	served, unknown, noSNI atomic.Uint64

	obtainDur, propagation, lockWait, syncLag histogram

	mu       sync.Mutex
	obtains  map[obtainKey]uint64
	dns      map[[3]string]uint64
	acme     map[[2]string]uint64
	storage  map[[2]string]uint64
	started  map[string]time.Time // obtain in progress: name → start
	inFlight map[string]bool      // obtain in progress: name → renewal
}

type obtainKey struct {
	renewal bool
	result  string
}

func (k obtainKey) Compare(o obtainKey) int {
	if k.renewal != o.renewal {
		if k.renewal {
			return 1
		}
		return -1
	}
	return strings.Compare(k.result, o.result)
}

// count adds one to m[k] under st.mu.
func count[K comparable](st *stats, m *map[K]uint64, k K) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if *m == nil {
		*m = map[K]uint64{}
	}
	(*m)[k]++
}

// obtainStarted records that certmagic began obtaining or renewing name.
func (st *stats) obtainStarted(name string, renewal bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.started == nil {
		st.started, st.inFlight = map[string]time.Time{}, map[string]bool{}
	}
	st.started[name] = time.Now()
	st.inFlight[name] = renewal
}

// obtainEnded records the end of an attempt begun by obtainStarted.
func (st *stats) obtainEnded(name string, renewal, ok bool) {
	result := "success"
	if !ok {
		result = "failure"
	}
	count(st, &st.obtains, obtainKey{renewal, result})
	st.mu.Lock()
	start, known := st.started[name]
	delete(st.started, name)
	delete(st.inFlight, name)
	st.mu.Unlock()
	if known {
		st.obtainDur.observe(time.Since(start))
	}
}

// obtaining reports whether an obtain or renewal of name is in progress,
// and which.
func (st *stats) obtaining(name string) (inProgress, renewal bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	renewal, inProgress = st.inFlight[name]
	return inProgress, renewal
}

// histogram counts durations into fixed buckets, from 1 ms to about 17 min.
type histogram struct {
	mu     sync.Mutex
	counts [len(bucketBounds)]uint64
	count  uint64
	sum    float64
}

// bucketBounds are the upper bounds, in seconds, of every histogram.
var bucketBounds = [...]float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1000}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count++
	h.sum += s
	for i, b := range bucketBounds {
		if s <= b {
			h.counts[i]++
		}
	}
}

func (h *histogram) snapshot() Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Histogram{Count: h.count, Sum: h.sum, Buckets: make([]Bucket, len(bucketBounds))}
	for i, b := range bucketBounds {
		out.Buckets[i] = Bucket{UpperBound: b, Count: h.counts[i]}
	}
	return out
}

// observeDNS counts one DNS provider call (dnsprovider.Observe's hook).
func (m *Manager) observeDNS(provider string) func(op string, err error, d time.Duration) {
	return func(op string, err error, _ time.Duration) {
		result := "success"
		if err != nil {
			result = "error"
		}
		count(&m.stats, &m.stats.dns, [3]string{provider, op, result})
	}
}

// observeACME counts one HTTP request to the CA, as the ACME client logs
// it (see slogCore.Check). A new order the CA rate-limits starts the
// fleet's back-off at once, before the attempt's error reaches the gate,
// so that the other members hold their orders back sooner.
func (m *Manager) observeACME(rawURL, status, retryAfter string) {
	endpoint := acmeEndpoint(rawURL)
	count(&m.stats, &m.stats.acme, [2]string{endpoint, status})
	if endpoint == "new-order" && status == "429" {
		now := time.Now()
		wait := dnsprovider.ParseRetryAfter(retryAfter, now)
		if wait <= 0 {
			wait = time.Minute
		}
		if err := m.gate.hold(m.ctx, m.caAccount(m.issuerKeys()[0]), now.Add(wait), "the CA answered a new order with 429 (rate limited)"); err != nil {
			m.log.Warn("recording the CA's back-off", "error", err)
		}
	}
}

// gateRequest holds back a new order to the first CA while the fleet's
// back-off with it is in force (see newIssuer).
func (m *Manager) gateRequest(req *http.Request) error {
	if req.Method != http.MethodPost || acmeEndpoint(req.URL.String()) != "new-order" || len(m.magic.Issuers) > 1 {
		return nil
	}
	if bo := m.gate.backoff(req.Context(), m.caAccount(m.issuerKeys()[0])); time.Now().Before(bo.Until) {
		return &WaitError{Until: bo.Until, Reason: bo.Reason, Err: ErrCABackoff}
	}
	return nil
}

// acmeEndpoint names the ACME resource a request URL is for, from the
// path names Let's Encrypt (Boulder) and Pebble use, so that the label has
// a bounded set of values.
func acmeEndpoint(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "other"
	}
	p := strings.ToLower(u.Path)
	for _, e := range []struct{ part, name string }{
		{"renewal", "renewal-info"},
		{"nonce", "new-nonce"},
		{"new-acct", "new-account"}, {"sign-me-up", "new-account"},
		{"new-order", "new-order"}, {"order-plz", "new-order"},
		{"finalize", "finalize"},
		{"authz", "authorization"},
		{"chal", "challenge"},
		{"cert", "certificate"},
		{"order", "order"},
		{"acct", "account"}, {"account", "account"},
		{"dir", "directory"},
	} {
		if strings.Contains(p, e.part) {
			return e.name
		}
	}
	return "other"
}

// observedStorage counts a Manager's storage operations and times its
// locks; it has exactly the optional interfaces of what it wraps.
type observedStorage struct {
	storage.PassThrough
	st *stats
}

func observeStorage(s certmagic.Storage, st *stats) certmagic.Storage {
	return storage.Expose(&observedStorage{PassThrough: storage.PassThrough{Storage: s}, st: st})
}

func (o *observedStorage) count(op string, err error) {
	result := "success"
	switch {
	case errors.Is(err, fs.ErrNotExist):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	count(o.st, &o.st.storage, [2]string{op, result})
}

func (o *observedStorage) Store(ctx context.Context, key string, value []byte) error {
	err := o.PassThrough.Store(ctx, key, value)
	o.count("store", err)
	return err
}

func (o *observedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := o.PassThrough.Load(ctx, key)
	o.count("load", err)
	return v, err
}

func (o *observedStorage) Delete(ctx context.Context, key string) error {
	err := o.PassThrough.Delete(ctx, key)
	o.count("delete", err)
	return err
}

func (o *observedStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	v, err := o.PassThrough.List(ctx, prefix, recursive)
	o.count("list", err)
	return v, err
}

func (o *observedStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, err := o.PassThrough.Stat(ctx, key)
	o.count("stat", err)
	return v, err
}

func (o *observedStorage) Lock(ctx context.Context, name string) error {
	start := time.Now()
	err := o.PassThrough.Lock(ctx, name)
	o.st.lockWait.observe(time.Since(start))
	o.count("lock", err)
	return err
}

func (o *observedStorage) Unlock(ctx context.Context, name string) error {
	err := o.PassThrough.Unlock(ctx, name)
	o.count("unlock", err)
	return err
}
