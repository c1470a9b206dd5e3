package tlsauto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// With Config.ShareNames, the set of names added with Manage is kept in the
// shared storage, one key per name under namesPrefix, so that a name
// managed or unmanaged at one member is served or dropped by all of them.
// Members learn of changes the way they learn of new certificates: through
// the storage's change feed, or by polling it every SyncInterval.
const namesPrefix = "certfleet/names"

// sharedName is the value stored for a shared name; only the key matters,
// the rest is for operators.
type sharedName struct {
	Name   string    `json:"name"`
	Added  time.Time `json:"added"`
	Member string    `json:"member"`
}

func sharedNameKey(name string) string { return path.Join(namesPrefix, name) }

// shareNames records names in the shared set.
func (m *Manager) shareNames(ctx context.Context, names []string) error {
	host, _ := os.Hostname()
	for _, n := range names {
		v, err := json.Marshal(sharedName{Name: n, Added: time.Now().UTC(), Member: fmt.Sprintf("%s pid %d", host, os.Getpid())})
		if err != nil {
			return err
		}
		if err := m.storage.Store(ctx, sharedNameKey(n), v); err != nil {
			return fmt.Errorf("recording %s in the shared set of names: %w", n, err)
		}
	}
	return nil
}

// unshareNames removes names from the shared set.
func (m *Manager) unshareNames(ctx context.Context, names []string) error {
	for _, n := range names {
		if err := m.storage.Delete(ctx, sharedNameKey(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s from the shared set of names: %w", n, err)
		}
	}
	return nil
}

// reconcileShared makes the managed names follow the shared set: names
// another member added are managed (without waiting for them), names it
// removed are dropped. Names of Config.Domains stay whatever the set says.
func (m *Manager) reconcileShared(ctx context.Context) error {
	// Only names managed before the listing may be dropped: a name that
	// Manage adds meanwhile is stored before it is added, so a listing that
	// misses it started before it was managed.
	before := m.Domains()
	keys, err := m.storage.List(ctx, namesPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	want := make(map[string]bool, len(keys))
	var add []string
	for _, k := range keys {
		raw := strings.TrimPrefix(strings.TrimPrefix(k, namesPrefix), "/")
		n, err := normalizeDomain(raw)
		if err != nil || n != raw {
			m.log.Warn("ignoring an invalid name in the shared set", "key", k, "error", err)
			continue
		}
		want[n] = true
		add = append(add, n)
	}
	m.add(add, false)
	var drop []string
	for _, n := range before {
		if !want[n] && !m.isFixed(n) {
			drop = append(drop, n)
		}
	}
	if len(drop) > 0 {
		m.log.Info("names removed from the shared set; no longer serving them", "names", drop)
		return m.remove(ctx, drop)
	}
	return nil
}
