// Package registry is the one set of registration rules behind
// dnsprovider.Register and storage.Register (the database/sql driver
// pattern): names are case-insensitive, and registering a name twice, an
// empty name or a nil function never panics; the mistake is kept and
// reported when the name is looked up.
package registry

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Registry maps names to constructors of type T. The zero value is not
// usable: set the fields that word its errors.
type Registry[T any] struct {
	Func string // the registering function, e.g. "storage.Register"
	What string // what is registered, e.g. "storage scheme"
	Key  string // what the name is called, e.g. "scheme"

	mu     sync.RWMutex
	byName map[string]T
	broken map[string]error // names registered badly
}

// Canonical returns name as the registry keys it: trimmed, in lower case.
func Canonical(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// Register adds v under name, or records why it cannot.
func (r *Registry[T]) Register(name string, v T) {
	key := Canonical(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = make(map[string]T)
		r.broken = make(map[string]error)
	}
	_, taken := r.byName[key]
	switch {
	case key == "":
		r.broken[key] = fmt.Errorf("%s was called with an empty %s", r.Func, r.Key)
	case isNil(v):
		r.broken[key] = fmt.Errorf("%s(%q) was called with a nil function", r.Func, name)
	case taken:
		r.broken[key] = fmt.Errorf("%s %q is registered twice: two imported packages call %s with that %s", r.What, key, r.Func, r.Key)
	default:
		r.byName[key] = v
	}
}

// Lookup returns what is registered under name: found is false when
// nothing is; err says what went wrong when name was registered badly
// (Lookup("") reports a registration with an empty name).
func (r *Registry[T]) Lookup(name string) (v T, found bool, err error) {
	key := Canonical(name)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.broken[key]; err != nil {
		return v, false, err
	}
	v, found = r.byName[key]
	return v, found, nil
}

// Names returns the names registered correctly, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Func, reflect.Pointer, reflect.Interface, reflect.Map, reflect.Chan, reflect.Slice:
		return rv.IsNil()
	}
	return false
}
