package redis

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStoreLoadRoundTripsValuesOfAllSizes(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	for _, size := range []int{0, 1, 1 << 20, 4 << 20} {
		key := "sizes/" + strings.Repeat("x", 1+size%7)
		want := bytes.Repeat([]byte{byte(size), 0, 0xff}, size/3+1)[:size]
		if err := s.Store(ctx, key, want); err != nil {
			t.Fatalf("Store %d bytes: %v", size, err)
		}
		got, err := s.Load(ctx, key)
		if err != nil {
			t.Fatalf("Load %d bytes: %v", size, err)
		}
		if !bytes.Equal(got, want) || got == nil {
			t.Fatalf("Load returned %d bytes (nil=%t), want the %d stored", len(got), got == nil, size)
		}
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if !info.IsTerminal || info.Size != int64(size) || info.Key != key {
			t.Fatalf("Stat = %+v, want a terminal key %q of %d bytes", info, key, size)
		}
	}
}

func TestStatReportsModifiedTime(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	before := time.Now()
	if err := s.Store(ctx, "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if info.Modified.Before(before.Add(-time.Second)) || info.Modified.After(time.Now().Add(time.Second)) {
		t.Fatalf("Modified = %v, want about %v", info.Modified, before)
	}
}

func TestMissingKeysAreNotExist(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	if err := s.Store(ctx, "present/key", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Load(ctx, "present"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a directory: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, "absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.List(ctx, "absent", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing key: %v, want fs.ErrNotExist", err)
	}
	if s.Exists(ctx, "absent") {
		t.Error("Exists of a missing key = true")
	}
	if err := s.Delete(ctx, "absent"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
}

func TestPrefixOperationsNeverOverMatch(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	for _, k := range []string{"d/a", "d/sub/b", "d/sub/deeper/c", "dx/a", "d.x", "e"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	lists := []struct {
		path      string
		recursive bool
		want      []string
	}{
		{"d", false, []string{"d/a", "d/sub"}},
		{"d", true, []string{"d/a", "d/sub", "d/sub/b", "d/sub/deeper", "d/sub/deeper/c"}},
		{"d/sub", false, []string{"d/sub/b", "d/sub/deeper"}},
		{"d/", false, []string{"d/a", "d/sub"}},
		{"", false, []string{"d", "d.x", "dx", "e"}},
		{"d/a", true, []string{}}, // a value, not a directory
	}
	for _, l := range lists {
		got, err := s.List(ctx, l.path, l.recursive)
		if err != nil {
			t.Fatalf("List(%q, %t): %v", l.path, l.recursive, err)
		}
		if !slices.Equal(got, l.want) {
			t.Errorf("List(%q, %t) = %q, want %q", l.path, l.recursive, got, l.want)
		}
	}

	info, err := s.Stat(ctx, "d/sub")
	if err != nil || info.IsTerminal || info.Key != "d/sub" {
		t.Errorf("Stat of a directory = %+v, %v; want a non-terminal key", info, err)
	}
	if !s.Exists(ctx, "d/sub") || !s.Exists(ctx, "d/sub/b") {
		t.Error("Exists is false for a directory or a value")
	}
	if s.Exists(ctx, "d/su") {
		t.Error(`Exists("d/su") = true: a partial component matched`)
	}

	if err := s.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"d", "d/a", "d/sub", "d/sub/b", "d/sub/deeper/c"} {
		if s.Exists(ctx, gone) {
			t.Errorf("%q exists after Delete(\"d\")", gone)
		}
	}
	for _, kept := range []string{"dx/a", "d.x", "e"} {
		if v, err := s.Load(ctx, kept); err != nil || string(v) != kept {
			t.Errorf("Load(%q) after Delete(\"d\") = %q, %v; want it untouched", kept, v, err)
		}
	}
	if got, _ := s.List(ctx, "", false); !slices.Equal(got, []string{"d.x", "dx", "e"}) {
		t.Errorf("root after Delete(\"d\") lists %q", got)
	}
}

func TestKeyCanBeBothValueAndDirectory(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	for _, k := range []string{"a", "a/b"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Load(ctx, "a"); err != nil || string(v) != "a" {
		t.Fatalf("Load(\"a\") after deleting its child = %q, %v", v, err)
	}
	if got, err := s.List(ctx, "", false); err != nil || !slices.Equal(got, []string{"a"}) {
		t.Fatalf("root lists %q, %v; want [a]", got, err)
	}
	if err := s.Store(ctx, "a/c", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "a") || s.Exists(ctx, "a/c") {
		t.Fatal("Delete(\"a\") left the value or its child")
	}
}

func TestDeleteLeavesNoIndexBehind(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	keys := []string{"certificates/acme/example.com/example.com.crt", "certificates/acme/example.com/example.com.key", "ocsp/x", "x"}
	for _, k := range keys {
		if err := s.Store(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "certificates/acme/example.com/example.com.crt"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(ctx, "certificates", true); len(got) != 3 {
		t.Errorf("after deleting one of two files: %q", got)
	}
	for _, k := range []string{"certificates/acme/example.com/example.com.key", "ocsp", "x"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if left := prefixKeys(t, s.prefix); len(left) != 0 {
		t.Fatalf("Redis keys left after deleting everything: %q", left)
	}
	if _, err := s.List(ctx, "", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of the empty root: %v, want fs.ErrNotExist", err)
	}
}

func TestOddKeyNamesNeverCollide(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	keys := []string{
		"wild/*.example.com", "wild/_.example.com", "colon/a:b", "colon/a", "at/me@example.com",
		"pct/100%", "pct/100%25", "br/[a]", "br/a", "uni/bücher.example", "uni/xn--bcher-kva.example",
		"long/" + strings.Repeat("n", 300), "long/" + strings.Repeat("n", 299),
		"p/ab", "p/a", "p/a/b", "sp/ a", "q/?", "star/*", "glob/h?llo", "glob/h[ae]llo",
	}
	for _, k := range keys {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatalf("Store(%q): %v", k, err)
		}
	}
	for _, k := range keys {
		if v, err := s.Load(ctx, k); err != nil || string(v) != k {
			t.Errorf("Load(%q) = %q, %v", k, v, err)
		}
	}
	if got, _ := s.List(ctx, "glob", false); !slices.Equal(got, []string{"glob/h?llo", "glob/h[ae]llo"}) {
		t.Errorf("List(glob) = %q", got)
	}
	if err := s.Delete(ctx, "glob/h?llo"); err != nil {
		t.Fatal(err)
	}
	if !s.Exists(ctx, "glob/h[ae]llo") {
		t.Error("deleting a key with glob characters deleted another")
	}
}

func TestInvalidKeysAreRejected(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	if err := s.Store(ctx, "", []byte("v")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Store of an empty key: %v", err)
	}
	if err := s.Store(ctx, "a//b", []byte("v")); err == nil || !strings.Contains(err.Error(), "a//b") {
		t.Errorf("Store of a key with an empty component: %v", err)
	}
	if err := s.Delete(ctx, "/"); err == nil {
		t.Error("Delete of the root succeeded")
	}
}

func TestStoreCopiesTheValue(t *testing.T) {
	s := newTestStorage(t)
	ctx := testCtx(t)
	v := []byte("original")
	if err := s.Store(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	copy(v, "mutated!")
	if got, _ := s.Load(ctx, "k"); string(got) != "original" {
		t.Fatalf("Load = %q after the caller reused its buffer", got)
	}
}

func TestPrefixesIsolateStorages(t *testing.T) {
	a := newTestStorage(t)
	b := newTestStorage(t)
	ctx := testCtx(t)
	if err := a.Store(ctx, "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if b.Exists(ctx, "k") {
		t.Fatal("a storage with another prefix sees the key")
	}
	if _, err := b.List(ctx, "", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of another prefix: %v", err)
	}
}
