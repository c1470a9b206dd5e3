package postgres

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage/storagetest"
)

// Keys holding LIKE and regex metacharacters must be matched literally: a
// LIKE 'p%/%' query would list and delete far too much.
func TestPrefixOperationsTreatPatternCharactersLiterally(t *testing.T) {
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "literal"), nil)
	ctx := testCtx(t)
	keys := []string{"p%/a", "p_/b", "pX/c", "p/d", "p%x/e", "p\\/f", "p.*/g"}
	for _, k := range keys {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"p%", []string{"p%/a"}},
		{"p_", []string{"p_/b"}},
		{"p\\", []string{"p\\/f"}},
		{"p.*", []string{"p.*/g"}},
		{"p", []string{"p/d"}},
	} {
		got, err := s.List(ctx, c.prefix, true)
		if err != nil {
			t.Fatalf("List(%q): %v", c.prefix, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("List(%q, recursive) = %q, want %q", c.prefix, got, c.want)
		}
	}
	if err := s.Delete(ctx, "p_"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "p%"); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"p%x/e", "p.*/g", "p/d", "pX/c", "p\\/f"}; !slices.Equal(got, want) {
		t.Errorf("after deleting p_ and p%%, List(\"\", recursive) = %q, want %q (bytewise order)", got, want)
	}
}

func TestRootPrefixCoversEverything(t *testing.T) {
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "root"), nil)
	ctx := testCtx(t)
	if s.Exists(ctx, "") {
		t.Errorf("Exists(\"\") = true in an empty storage")
	}
	if got, err := s.List(ctx, "", false); err != nil || len(got) != 0 {
		t.Errorf("List(\"\") of an empty storage = %q, %v; want no keys and no error", got, err)
	}
	for _, k := range []string{"a/b/c", "a/d", "e"} {
		if err := s.Store(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.List(ctx, "", false); err != nil || !slices.Equal(got, []string{"a", "e"}) {
		t.Errorf("List(\"\", flat) = %q, %v; want [a e]", got, err)
	}
	if info, err := s.Stat(ctx, ""); err != nil || info.IsTerminal {
		t.Errorf("Stat(\"\") = %+v, %v; want a directory", info, err)
	}
	if err := s.Delete(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "a") || s.Exists(ctx, "e") {
		t.Errorf("keys remain after Delete(\"\")")
	}
}

func TestInvalidKeysAreRejectedWithTheReason(t *testing.T) {
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "badkeys"), nil)
	ctx := testCtx(t)
	for _, c := range []struct {
		key, want string
	}{
		{"", "key is empty"},
		{"/a", "empty path component"},
		{"a/", "empty path component"},
		{"a//b", "empty path component"},
		{"a\x00b", "NUL byte"},
		{"a\xffb", "not valid UTF-8"},
		{strings.Repeat("k", maxNameBytes+1), "at most 2048 bytes"},
	} {
		err := s.Store(ctx, c.key, []byte("v"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Store(%.20q): error %v, want one saying %q", c.key, err, c.want)
		}
		if _, err := s.Load(ctx, c.key); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%.20q): error %v, want a validation error (not fs.ErrNotExist)", c.key, err)
		}
	}
	if err := s.Lock(ctx, "a\x00b"); err == nil || !strings.Contains(err.Error(), "NUL byte") {
		t.Errorf("Lock of a name with NUL: error %v, want one saying NUL byte", err)
	}
}

// A blip in the connection must not fail a Store: certmagic would delete the
// files it stored just before.
func TestStoreRidesOutAConnectionBlip(t *testing.T) {
	cs := testConnString(t)
	p := storagetest.NewProxy(t, serverAddr(t, cs))
	s := newTestStorage(t, viaProxy(t, cs, p.Addr()), uniqueNamespace(t, "blip"), func(c *Config) {
		c.RetryTimeout = 30 * testTTL // long enough for any machine
	})
	ctx := testCtx(t)
	if err := s.Store(ctx, "k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	done := make(chan error, 1)
	go func() { done <- s.Store(ctx, "k", []byte("new")) }()
	// The proxy refuses every reconnection attempt (the Store's retries and
	// the change listener's) until Restore; let several happen while the
	// Store is still waiting.
	var early error
	returned := func() bool {
		select {
		case early = <-done:
			return true
		default:
			return false
		}
	}
	wait.For(t, 30*time.Second, "reconnection attempts during the outage", func() bool { return returned() || p.Refused() >= 6 })
	if early != nil || p.Refused() < 6 {
		t.Fatalf("Store during the outage returned %v before the outage ended", early)
	}
	p.Restore()
	if err := <-done; err != nil {
		t.Fatalf("Store across a connection blip: %v", err)
	}
	got, err := s.Load(ctx, "k")
	if err != nil || string(got) != "new" {
		t.Errorf("Load after the blip = %q, %v; want new", got, err)
	}
}

func TestOutageIsAnErrorNotAMissingKey(t *testing.T) {
	cs := testConnString(t)
	p := storagetest.NewProxy(t, serverAddr(t, cs))
	s := newTestStorage(t, viaProxy(t, cs, p.Addr()), uniqueNamespace(t, "down"), func(c *Config) {
		c.RetryTimeout = -1 // no retries: fail at once
	})
	ctx := testCtx(t)
	if err := s.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	defer p.Restore()
	if _, err := s.Load(ctx, "missing"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing key during an outage: %v, want an error that is not fs.ErrNotExist", err)
	}
	if _, err := s.List(ctx, "missing", false); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing prefix during an outage: %v, want an error that is not fs.ErrNotExist", err)
	}
	if !s.Exists(ctx, "missing") {
		t.Errorf("Exists during an outage = false, want true (cannot tell)")
	}
}

func TestEmptyAndNilValuesRoundTrip(t *testing.T) {
	s := newTestStorage(t, testConnString(t), uniqueNamespace(t, "empty"), nil)
	ctx := testCtx(t)
	for _, v := range [][]byte{nil, {}} {
		if err := s.Store(ctx, "e", v); err != nil {
			t.Fatalf("Store(%#v): %v", v, err)
		}
		got, err := s.Load(ctx, "e")
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("Load after Store(%#v) = %#v, %v; want an empty, non-nil value", v, got, err)
		}
	}
}
