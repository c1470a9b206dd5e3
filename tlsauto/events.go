package tlsauto

import (
	"context"
	"time"
)

// EventKind says what happened to a certificate.
type EventKind string

// Event kinds.
const (
	Obtained EventKind = "obtained" // a new certificate was obtained
	Renewed  EventKind = "renewed"  // a certificate was renewed
	Failed   EventKind = "failed"   // obtaining or renewing failed; Err says why
	// Quarantined: stored data for the name (its certificate, key or the
	// ACME account) could not be used and was moved aside under
	// certfleet/quarantine/ to be obtained anew; Err says why.
	Quarantined EventKind = "quarantined"
)

// Event reports a change to one managed certificate.
type Event struct {
	Kind    EventKind
	Name    string    // the managed name (as normalized in Domains)
	Issuer  string    // the issuer's key: the CA's host and path
	Renewal bool      // the event is about a renewal
	Err     error     // set for Failed
	Time    time.Time // when it happened
}

// emit is certmagic's OnEvent hook: it translates certmagic's events into
// ours and logs them.
func (m *Manager) emit(ctx context.Context, name string, data map[string]any) error {
	var e Event
	switch name {
	case "cert_obtaining":
		id, _ := data["identifier"].(string)
		renewal, _ := data["renewal"].(bool)
		forced, _ := data["forced"].(bool)
		if err := m.gateOrder(ctx, id, renewal, forced); err != nil {
			return err // cancels the attempt before it reaches the CA
		}
		m.stats.obtainStarted(id, renewal)
		return nil
	case "cert_obtained":
		e.Kind = Obtained
	case "cert_failed":
		e.Kind = Failed
	default:
		return nil
	}
	e.Time = time.Now()
	e.Name, _ = data["identifier"].(string)
	e.Issuer, _ = data["issuer"].(string)
	e.Renewal, _ = data["renewal"].(bool)
	e.Err, _ = data["error"].(error)
	if e.Kind == Obtained && e.Renewal {
		e.Kind = Renewed
	}
	m.stats.obtainEnded(e.Name, e.Renewal, e.Kind != Failed)
	m.noteCAResult(ctx, e.Name, data, e.Err)
	m.noteAttempt(e)
	if e.Kind != Failed {
		// Serve it now; the handshake path never reads storage. Other
		// members learn who obtained it from the record.
		if cert, err := m.load(ctx, e.Name); err != nil {
			m.log.Error("loading the new certificate to serve it", "name", e.Name, "error", err)
		} else {
			m.recordObtained(ctx, e.Name, cert.Leaf.SerialNumber.Text(16))
			m.publish(e.Name, cert, "obtained")
		}
	}
	if e.Kind == Failed {
		m.log.Error("certificate "+string(e.Kind), "name", e.Name, "renewal", e.Renewal, "error", e.Err)
	} else {
		m.log.Info("certificate "+string(e.Kind), "name", e.Name, "issuer", e.Issuer)
	}
	m.emitEvent(e)
	return nil
}

// emitEvent passes e to Config.OnEvent, if set.
func (m *Manager) emitEvent(e Event) {
	if m.onEvent != nil {
		m.onEvent(e)
	}
}

// noteAttempt updates what Status says of a name after certmagic's attempt
// to obtain or renew its certificate.
func (m *Manager) noteAttempt(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	en, ok := m.names[e.Name]
	if !ok {
		return
	}
	en.lastAttempt = e.Time
	switch {
	case e.Kind == Failed && en.managed: // a renewal (before, the worker counts)
		en.failures++
		en.lastErr = e.Err
	case e.Kind != Failed:
		en.failures, en.lastErr = 0, nil
	}
}
