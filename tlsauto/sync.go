package tlsauto

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage"
)

// syncLoop keeps the served certificates up to date with storage, where
// other members of the fleet store the certificates they obtain or renew:
// through the storage's change feed when it has one, by polling otherwise.
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
	names := m.keyNames()
	for key := range changes {
		if key == "" { // changes may have been missed
			if err := m.reloadAll(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("reloading certificates from storage", "error", err)
			}
			continue
		}
		name, ok := names[key]
		if !ok {
			continue
		}
		if changed, err := m.reload(ctx, name); err != nil && ctx.Err() == nil {
			m.log.Debug("reloading certificate after a change in storage", "name", name, "error", err)
		} else if changed {
			m.log.Info("serving certificate updated in storage", "name", name)
		}
	}
}

// keyNames maps the storage keys of each managed name's certificate and
// private key to the name.
func (m *Manager) keyNames() map[string]string {
	issuer := m.magic.Issuers[0].IssuerKey()
	keys := make(map[string]string, 2*len(m.s.domains))
	for _, name := range m.s.domains {
		keys[certmagic.StorageKeys.SiteCert(issuer, name)] = name
		keys[certmagic.StorageKeys.SitePrivateKey(issuer, name)] = name
	}
	return keys
}

// poll reloads every certificate each SyncInterval.
func (m *Manager) poll(ctx context.Context) {
	t := time.NewTicker(m.s.syncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.reloadAll(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("reloading certificates from storage", "error", err)
			}
		}
	}
}
