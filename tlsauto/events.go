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
	if e.Kind != Failed {
		// Serve it now; the handshake path never reads storage.
		if _, err := m.reload(ctx, e.Name); err != nil {
			m.log.Error("loading the new certificate to serve it", "name", e.Name, "error", err)
		}
	}
	if e.Kind == Failed {
		m.log.Error("certificate "+string(e.Kind), "name", e.Name, "renewal", e.Renewal, "error", e.Err)
	} else {
		m.log.Info("certificate "+string(e.Kind), "name", e.Name, "issuer", e.Issuer)
	}
	if m.onEvent != nil {
		m.onEvent(e)
	}
	return nil
}
