package tlsauto

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// NameState is the state of one managed name in Status.
type NameState string

// Name states.
const (
	StateOK        NameState = "ok"         // served, healthy, nothing pending
	StateObtaining NameState = "obtaining"  // no certificate yet; an attempt is under way or due
	StateRenewing  NameState = "renewing"   // served; a renewal is under way
	StateFailing   NameState = "failing"    // the last attempt failed (or the CA refused the name)
	StateNotServed NameState = "not served" // no certificate is served (expired and dropped, say)
)

// Status is a snapshot of what a Manager serves and why, cheap enough to
// take on every scrape: it reads memory only.
type Status struct {
	Member   string       `json:"member"`               // this Manager's member id: host and process
	LastSync time.Time    `json:"last_sync,omitzero"`   // last certificate read from shared storage
	Names    []NameStatus `json:"names"`                // in the order of Domains
	Healthy  bool         `json:"healthy"`              // every name is served with enough lifetime left
	Faults   []string     `json:"faults,omitempty"`     // the names that are not, with why
	Checked  time.Time    `json:"checked"`              // when this snapshot was taken
	MinLeft  float64      `json:"min_lifetime_left"`    // Config.HealthyLifetimeLeft in force
	Shared   bool         `json:"share_names,omitzero"` // Config.ShareNames
}

// NameStatus is the state of one managed name.
type NameStatus struct {
	Name        string           `json:"name"`
	State       NameState        `json:"state"`
	Certificate *CertificateInfo `json:"certificate,omitempty"` // the one served, if any

	// RenewAt is when the served certificate is due for renewal, and
	// RenewReason why then: "ari" (the CA's suggested window) or
	// "lifetime ratio" (Config.RenewalWindowRatio).
	RenewAt     time.Time `json:"renew_at,omitzero"`
	RenewReason string    `json:"renew_reason,omitempty"`

	LastAttempt         time.Time `json:"last_attempt,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures,omitempty"`
	NextRetry           time.Time `json:"next_retry,omitzero"`

	// ObtainedBy is the member that obtained the served certificate, as
	// it recorded itself in storage ("" if unknown).
	ObtainedBy string `json:"obtained_by,omitempty"`
}

// CertificateInfo describes a served certificate. It holds no key.
type CertificateInfo struct {
	Serial    string    `json:"serial"`
	SANs      []string  `json:"sans"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	KeyType   string    `json:"key_type"`
}

// Status returns what the Manager serves for each managed name and why.
// The CertificateInfo values are shared between calls: do not modify them.
func (m *Manager) Status() Status {
	now := time.Now()
	snap := m.served.load()
	st := Status{Member: m.member, Checked: now, MinLeft: m.s.minLifetimeLeft, Shared: m.s.shareNames, Healthy: true}
	if t := m.lastSync.Load(); t != nil {
		st.LastSync = *t
	}
	names := m.Domains()
	st.Names = make([]NameStatus, 0, len(names))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, name := range names {
		e, ok := m.names[name]
		if !ok {
			continue
		}
		ns := NameStatus{Name: name, LastAttempt: e.lastAttempt, ConsecutiveFailures: e.failures,
			NextRetry: e.nextRetry, ObtainedBy: e.obtainedBy, RenewAt: e.renewAt, RenewReason: e.renewReason}
		if e.lastErr != nil {
			ns.LastError = e.lastErr.Error()
		}
		cert := snap.lookupManaged(name)
		if cert != nil && cert.Leaf != nil {
			if e.infoOf != cert {
				e.info, e.infoOf = describe(cert.Leaf), cert
			}
			ns.Certificate = e.info
		}
		inProgress, _ := m.stats.obtaining(name)
		switch {
		case e.gaveUp || e.failures > 0:
			ns.State = StateFailing
		case cert != nil && inProgress:
			ns.State = StateRenewing
		case cert == nil && (e.managed || e.ctx.Err() != nil):
			ns.State = StateNotServed
		case cert == nil:
			ns.State = StateObtaining
		default:
			ns.State = StateOK
		}
		if why := m.unhealthy(cert, now); why != "" {
			st.Healthy = false
			st.Faults = append(st.Faults, name+": "+why)
		}
		st.Names = append(st.Names, ns)
	}
	return st
}

// unhealthy says why a name served with cert (nil: none) is not healthy,
// or "".
func (m *Manager) unhealthy(cert *tls.Certificate, now time.Time) string {
	if cert == nil || cert.Leaf == nil {
		return "no certificate served"
	}
	l := cert.Leaf
	life := l.NotAfter.Sub(l.NotBefore)
	left := l.NotAfter.Sub(now)
	if left <= 0 {
		return "the served certificate expired at " + l.NotAfter.UTC().Format(time.RFC3339)
	}
	if frac := float64(left) / float64(life); frac < m.s.minLifetimeLeft {
		return fmt.Sprintf("the served certificate has %.1f%% of its lifetime left (expires %s)", 100*frac, l.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// lookupManaged returns the certificate served for a managed name
// (perhaps a wildcard), nil if none.
func (s *snapshot) lookupManaged(name string) *tls.Certificate {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return s.wild.get(rest)
	}
	return s.exact.get(name)
}

func describe(l *x509.Certificate) *CertificateInfo {
	return &CertificateInfo{
		Serial:    l.SerialNumber.Text(16),
		SANs:      slices.Clone(l.DNSNames),
		Issuer:    l.Issuer.CommonName,
		NotBefore: l.NotBefore,
		NotAfter:  l.NotAfter,
		KeyType:   keyType(l.PublicKey),
	}
}

func keyType(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ecdsa-" + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "ed25519"
	}
	return "unknown"
}

// HealthHandler returns an HTTP handler answering with the JSON of Status:
// 200 when every managed name is served by a certificate with more than
// Config.HealthyLifetimeLeft of its lifetime left (10 % by default), 503
// otherwise, the names at fault listed in "faults". Point a Kubernetes
// readiness probe at it.
func (m *Manager) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := m.Status()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !st.Healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st) // the client may be gone
	})
}

// obtainedRecord is what a member stores when it obtains or renews a
// certificate, under obtainedPrefix/<name>: who did it and when, for Status
// and for measuring how long other members take to serve it.
type obtainedRecord struct {
	Member string    `json:"member"`
	Serial string    `json:"serial"`
	Time   time.Time `json:"time"`
}

const obtainedPrefix = "certfleet/obtained"

// memberID names this process: host and process id.
func memberID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// recordObtained stores who obtained name's certificate with serial.
func (m *Manager) recordObtained(ctx context.Context, name, serial string) {
	v, _ := json.Marshal(obtainedRecord{Member: m.member, Serial: serial, Time: time.Now().UTC()})
	if err := m.storage.Store(ctx, path.Join(obtainedPrefix, name), v); err != nil {
		m.log.Debug("recording who obtained the certificate", "name", name, "error", err)
	}
	m.noteObtainedBy(ctx, name)
}

// noteObtainedBy reads who obtained the certificate served for name, for
// Status. The record may be stored after the certificate (by this member
// or another): the change feed calls this again when it is.
func (m *Manager) noteObtainedBy(ctx context.Context, name string) {
	cert := m.served.load().lookupManaged(name)
	if cert == nil || cert.Leaf == nil {
		return
	}
	var rec obtainedRecord
	v, err := m.storage.Load(ctx, path.Join(obtainedPrefix, name))
	if err != nil || json.Unmarshal(v, &rec) != nil || rec.Serial != cert.Leaf.SerialNumber.Text(16) {
		rec = obtainedRecord{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.names[name]; ok {
		e.obtainedBy = rec.Member
	}
}

// queueNote asks noteLoop to update what Status says of the certificate
// just served for name. The storage reads that takes are kept off the path
// that brings names under management: at start, thousands of names are
// published at once.
func (m *Manager) queueNote(name, source string) {
	m.noteMu.Lock()
	if m.notes == nil {
		m.notes = map[string]string{}
	}
	m.notes[name] = source
	m.noteMu.Unlock()
	select {
	case m.noteWake <- struct{}{}:
	default:
	}
}

// noteLoop runs notePublished for the names queueNote queues, until ctx
// ends.
func (m *Manager) noteLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.noteWake:
		}
		m.noteMu.Lock()
		notes := m.notes
		m.notes = nil
		m.noteMu.Unlock()
		for name, source := range notes {
			if ctx.Err() != nil {
				return
			}
			if cert := m.served.load().lookupManaged(name); cert != nil && cert.Leaf != nil {
				m.notePublished(ctx, name, cert, source)
			}
		}
	}
}

// notePublished updates what Status says of a certificate just served for
// name: who obtained it and when it renews and why; and, when it came from
// storage, counts how long after it was stored it got here.
func (m *Manager) notePublished(ctx context.Context, name string, cert *tls.Certificate, source string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	issuer := m.issuerOf(ctx, name, cert)
	if source == "storage" {
		if info, err := m.storage.Stat(ctx, certmagic.StorageKeys.SiteCert(issuer, name)); err == nil && !info.Modified.IsZero() {
			m.stats.syncLag.observe(max(time.Since(info.Modified), 0))
		}
	}
	m.noteObtainedBy(ctx, name)
	renewAt, reason := m.renewalTime(ctx, issuer, name, cert.Leaf)
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.names[name]; ok {
		e.renewAt, e.renewReason = renewAt, reason
	}
}

// renewalTime is when certmagic renews leaf: at the time it chose in the
// CA's ARI window, recorded in the certificate's metadata, or when
// RenewalWindowRatio of its lifetime is left.
func (m *Manager) renewalTime(ctx context.Context, issuer, name string, leaf *x509.Certificate) (time.Time, string) {
	if v, err := m.storage.Load(ctx, certmagic.StorageKeys.SiteMeta(issuer, name)); err == nil {
		var meta struct {
			IssuerData struct {
				RenewalInfo *struct {
					SelectedTime time.Time `json:"_selectedTime"`
				} `json:"renewal_info"`
			} `json:"issuer_data"`
		}
		if json.Unmarshal(v, &meta) == nil && meta.IssuerData.RenewalInfo != nil && !meta.IssuerData.RenewalInfo.SelectedTime.IsZero() {
			return meta.IssuerData.RenewalInfo.SelectedTime, "ari"
		}
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-time.Duration(float64(life) * m.s.renewalRatio)), "lifetime ratio"
}

// issuerOf returns the issuer key of the CA whose stored certificate for
// name is cert: the first CA's when there is only one, or none matches.
func (m *Manager) issuerOf(ctx context.Context, name string, cert *tls.Certificate) string {
	keys := m.issuerKeys()
	if len(keys) > 1 {
		for _, issuer := range keys {
			if c, err := m.loadIssued(ctx, issuer, name); err == nil && bytes.Equal(c.Certificate[0], cert.Certificate[0]) {
				return issuer
			}
		}
	}
	return keys[0]
}
