package tlsauto

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/certfleet/certfleet/storage"
)

// syncLoop keeps the served certificates up to date with storage, where
// other members of the fleet store the certificates they obtain or renew
// (and, with Config.ShareNames, the set of names): through the storage's
// change feed when it has one, by polling otherwise.
func (m *Manager) syncLoop(ctx context.Context) {
	if w, ok := m.storage.(storage.Watcher); ok {
		changes, err := w.Watch(ctx)
		if err == nil {
			m.follow(ctx, changes)
			if ctx.Err() != nil {
				return
			}
			err = errors.New("the change feed ended") // the storage was closed under us
		}
		m.log.Warn("storage change feed unavailable; polling instead", "interval", m.s.syncInterval, "error", err)
	}
	m.poll(ctx)
}

// follow reloads the certificates whose keys change.
func (m *Manager) follow(ctx context.Context, changes <-chan string) {
	for key := range changes {
		switch {
		case key == "": // changes may have been missed
			m.resync(ctx)
		case key == ticketKeysKey:
			m.ticketsChanged()
		case strings.HasPrefix(key, obtainedPrefix+"/"):
			if name := strings.TrimPrefix(key, obtainedPrefix+"/"); m.isManaged(name) {
				m.noteObtainedBy(ctx, name)
			}
		case m.s.shareNames && strings.HasPrefix(key, namesPrefix+"/"):
			if err := m.reconcileShared(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("reading the shared set of names", "error", err)
			}
		default:
			m.mu.Lock()
			name, ok := m.keys[key]
			m.mu.Unlock()
			if !ok {
				continue
			}
			if changed, err := m.reload(ctx, name); err != nil && ctx.Err() == nil {
				m.log.Debug("reloading certificate after a change in storage", "name", name, "error", err)
			} else if changed {
				m.log.Info("serving certificate updated in storage", "name", name)
				m.retryNow(name)
			}
		}
	}
}

// resync reads the shared set of names (with Config.ShareNames) and every
// managed certificate again.
func (m *Manager) resync(ctx context.Context) {
	m.ticketsChanged()
	if m.s.shareNames {
		if err := m.reconcileShared(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reading the shared set of names", "error", err)
		}
	}
	if err := m.reloadAll(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("reloading certificates from storage", "error", err)
	}
}

// poll resyncs every SyncInterval.
func (m *Manager) poll(ctx context.Context) {
	t := time.NewTicker(m.s.syncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.resync(ctx)
		}
	}
}
