package file

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certfleet/certfleet/storage"
)

// HeldLock is a lock held at the time HeldLocks read the lock directory;
// Owner is the holder's host, process id and a random tag.
type HeldLock = storage.HeldLock

// HeldLocks returns the locks that are held now (taken, not released, lease
// running), sorted by name, for operators' tools: what they return may
// change as soon as it is read. Locks being taken or released at the same
// moment may be missed.
func (s *Storage) HeldLocks(ctx context.Context) ([]HeldLock, error) {
	ents, err := os.ReadDir(s.lockDir)
	if notExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []HeldLock
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.lockDir, e.Name())
		gens, err := generations(dir)
		if err != nil || len(gens) == 0 {
			continue
		}
		top := gens[len(gens)-1]
		p := genPath(dir, top)
		fi, err := os.Stat(p)
		if err != nil || !fi.ModTime().After(now) {
			continue // gone, released or expired
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var info lockInfo
		if json.Unmarshal(b, &info) != nil {
			continue
		}
		out = append(out, HeldLock{Name: info.Name, Owner: info.Owner, Acquired: info.Acquired, Expires: fi.ModTime(), Token: top})
	}
	slices.SortFunc(out, func(a, b HeldLock) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
