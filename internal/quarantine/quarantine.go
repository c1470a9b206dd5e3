// Package quarantine moves stored data that cannot be used out of the way,
// keeping it for people to look at: a value that does not parse or does not
// decrypt is copied, as stored, under Prefix/<time>/<its key> beside a
// reason.json note, and only then deleted. tlsauto quarantines certificates
// and ACME accounts this way, dnsprovider/dns01 its journal entries, so
// that an operator finds everything certfleet set aside in one place.
//
// The package does not link certmagic: dnsprovider/dns01 uses it too.
package quarantine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"time"
)

// Prefix is the storage key under which quarantined data is kept.
const Prefix = "certfleet/quarantine"

// timeLayout names a quarantine's directory: sortable, and distinct for
// quarantines a nanosecond apart.
const timeLayout = "20060102T150405.000000000Z"

// ErrCorrupt is matched (errors.Is) by storage errors meaning that a stored
// value itself cannot be used, such as one that fails to decrypt, as
// opposed to one that is missing or cannot be reached now: only the former
// is a reason to move anything.
var ErrCorrupt = errors.New("stored value cannot be used")

// Storage is what a quarantine needs of a storage.
type Storage interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Store(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
}

// Note is stored as reason.json beside the quarantined keys.
type Note struct {
	Name   string    `json:"name"`   // what the data was for: a domain name, a journal entry
	Reason string    `json:"reason"` // why it could not be used
	Keys   []string  `json:"keys"`   // the original keys, as found below the quarantine directory
	Time   time.Time `json:"time"`
}

// Move copies keys, as stored (still encrypted if s encrypts: the copy is
// read from the innermost storage s wraps), under a new quarantine
// directory with a Note, then deletes them through s. Missing keys are
// skipped. It returns the directory and the keys moved. Nothing is deleted
// unless every copy and the note were stored.
func Move(ctx context.Context, s Storage, name, reason string, keys []string) (dir string, moved []string, err error) {
	now := time.Now().UTC()
	dir = path.Join(Prefix, now.Format(timeLayout))
	raw := Raw(s)
	for _, k := range keys {
		v, err := raw.Load(ctx, k)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return dir, nil, fmt.Errorf("reading %s: %w", k, err)
		}
		if err := raw.Store(ctx, path.Join(dir, k), v); err != nil {
			return dir, nil, fmt.Errorf("copying %s aside: %w", k, err)
		}
		moved = append(moved, k)
	}
	note, _ := json.Marshal(Note{Name: name, Reason: reason, Keys: moved, Time: now})
	if err := raw.Store(ctx, path.Join(dir, "reason.json"), note); err != nil {
		return dir, nil, fmt.Errorf("storing the quarantine note: %w", err)
	}
	for _, k := range moved {
		if err := s.Delete(ctx, k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return dir, moved, fmt.Errorf("deleting %s after copying it aside: %w", k, err)
		}
	}
	return dir, moved, nil
}

// Raw returns the innermost storage under s's wrappers (encryption), whose
// bytes can be copied even when they no longer decrypt. A wrapper is a
// value with an Unwrap method returning the storage it wraps; the method is
// found by reflection because its result type is certmagic.Storage, which
// this package does not link.
func Raw(s Storage) Storage {
	for range 32 { // wrappers nest a few deep; a cycle must not hang
		m := reflect.ValueOf(s).MethodByName("Unwrap")
		if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
			return s
		}
		out := m.Call(nil)[0]
		switch out.Kind() {
		case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Func:
			if out.IsNil() {
				return s
			}
		}
		inner, ok := out.Interface().(Storage)
		if !ok || inner == nil {
			return s
		}
		s = inner
	}
	return s
}
