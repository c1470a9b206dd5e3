package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/certmagic"
)

const mib = 1 << 20

// oddNames are key components and lock names that a backend mapping names
// onto files, SQL patterns or glob patterns could confuse: escape characters
// of those syntaxes, names that escape into each other, case and Unicode
// variants, names longer than a file name may be, and prefixes of each other.
func oddNames() []string {
	return []string{
		"*", "a*b", "*.example.com", "wildcard_.example.com",
		"a:b", "a-b", "a@b", "me@example.com",
		"%", "a%b", "a%25b", "a%2Ab", "a_2a", "a%2a",
		"_", "a_b", "a.b", "a..b", ".a", "a.", "~a", "a~",
		"[", "a[b]", "a]b", "?", "a?b", "{a,b}", "^$", "\\", "a\\b",
		"a b", " a", "a+b", "#", "&", "=", "'", "\"", "`", "$", "!", "|", ";",
		"ключ", "名前", "ü", "u\u0308", "Ü", "😀",
		"A", "a", "Ab", "ab", "aB",
		"p", "pq", "pqr", "pqr-", "pq.r",
		strings.Repeat("x", 300), strings.Repeat("x", 299) + "y", strings.Repeat("é", 300),
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustStore(t testing.TB, s certmagic.Storage, key string, value []byte) {
	t.Helper()
	if err := s.Store(opCtx(t), key, value); err != nil {
		t.Fatalf("Store(%q, %d bytes): %v", key, len(value), err)
	}
}

func mustLoad(t testing.TB, s certmagic.Storage, key string, want []byte) {
	t.Helper()
	got, err := s.Load(opCtx(t), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Load(%q) = %s, want %s", key, describe(got), describe(want))
	}
}

func mustNotExist(t testing.TB, s certmagic.Storage, key string, why string) {
	t.Helper()
	if _, err := s.Load(opCtx(t), key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(%q) %s: want an error wrapping fs.ErrNotExist, got %v", key, why, err)
	}
	if s.Exists(opCtx(t), key) {
		t.Errorf("Exists(%q) %s = true, want false", key, why)
	}
}

func describe(v []byte) string {
	if len(v) <= 32 {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%d bytes starting %q", len(v), v[:16])
}

func (r *run) testValueSizes(t *testing.T) {
	s := r.client(t, r.namespace("sizes"))
	for _, size := range []int{0, 1, mib, 4 * mib} {
		key := fmt.Sprintf("sizes/%d", size)
		v := randomBytes(t, size)
		mustStore(t, s, key, v)
		mustLoad(t, s, key, v)
		if !s.Exists(opCtx(t), key) {
			t.Errorf("Exists(%q) = false for a stored %d-byte value", key, size)
		}
		info, err := s.Stat(opCtx(t), key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", key, err)
		}
		if info.Key != key || !info.IsTerminal || (info.Size != 0 && info.Size != int64(size)) {
			t.Errorf("Stat(%q) = {Key:%q IsTerminal:%v Size:%d}, want {Key:%q IsTerminal:true Size:%d (or 0 if unknown)}",
				key, info.Key, info.IsTerminal, info.Size, key, size)
		}
	}
	// Overwriting replaces the whole value, also with a shorter one.
	mustStore(t, s, "sizes/over", bytes.Repeat([]byte("long"), 1000))
	mustStore(t, s, "sizes/over", []byte("short"))
	mustLoad(t, s, "sizes/over", []byte("short"))
}

func (r *run) testStoreCopies(t *testing.T) {
	s := r.client(t, r.namespace("copies"))
	v := []byte("original")
	mustStore(t, s, "copy", v)
	copy(v, "CHANGED!")
	mustLoad(t, s, "copy", []byte("original"))
	got, err := s.Load(opCtx(t), "copy")
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "CHANGED!")
	mustLoad(t, s, "copy", []byte("original"))
}

func (r *run) testOddKeyNames(t *testing.T) {
	ns := r.namespace("keynames")
	s, other := r.client(t, ns), r.client(t, ns)
	names := oddNames()
	var files, dirs []string
	for _, n := range names {
		files = append(files, "odd/"+n)
		dirs = append(dirs, "odddir/"+n)
		mustStore(t, s, "odd/"+n, []byte(n))
		mustStore(t, s, "odddir/"+n+"/leaf", []byte(n))
	}
	for _, n := range names {
		mustLoad(t, other, "odd/"+n, []byte(n))
		mustLoad(t, other, "odddir/"+n+"/leaf", []byte(n))
		if !other.Exists(opCtx(t), "odddir/"+n) {
			t.Errorf("Exists(%q) = false for a directory holding a key", "odddir/"+n)
		}
	}
	checkList(t, other, "odd", false, files, nil)
	checkList(t, other, "odddir", false, dirs, nil)
	// Deleting one odd name leaves the others, including names it is a prefix of.
	if err := other.Delete(opCtx(t), "odd/p"); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(opCtx(t), "odddir/p"); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, s, "odd/p", "after Delete")
	mustNotExist(t, s, "odddir/p/leaf", "after Delete of its directory")
	mustLoad(t, s, "odd/pq", []byte("pq"))
	mustLoad(t, s, "odddir/pq/leaf", []byte("pq"))
}

// checkList checks that List(prefix, recursive) returns exactly want; keys in
// maybe may also appear (a recursive listing may or may not include
// directories).
func checkList(t testing.TB, s certmagic.Storage, prefix string, recursive bool, want, maybe []string) {
	t.Helper()
	got, err := s.List(opCtx(t), prefix, recursive)
	if err != nil {
		t.Fatalf("List(%q, %v): %v", prefix, recursive, err)
	}
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	seen := map[string]bool{}
	for _, g := range got {
		if seen[g] {
			extra = append(extra, g+" (twice)")
		}
		seen[g] = true
		if !slices.Contains(want, g) && !slices.Contains(maybe, g) {
			extra = append(extra, g)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("List(%q, recursive=%v): missing %q, unexpected %q", prefix, recursive, missing, extra)
	}
}

func (r *run) testTreeSemantics(t *testing.T) {
	ns := r.namespace("tree")
	s, other := r.client(t, ns), r.client(t, ns)
	for _, k := range []string{"t/d/a", "t/d/b/c", "t/d/b/e", "t/dx/y", "t/d2", "t/d.x", "t/e/f/g"} {
		mustStore(t, s, k, []byte("v"))
	}
	checkList(t, other, "t/d", false, []string{"t/d/a", "t/d/b"}, nil)
	checkList(t, other, "t/d", true, []string{"t/d/a", "t/d/b/c", "t/d/b/e"}, []string{"t/d/b"})
	checkList(t, other, "t", false, []string{"t/d", "t/dx", "t/d2", "t/d.x", "t/e"}, nil)
	checkList(t, other, "t/e", true, []string{"t/e/f/g"}, []string{"t/e/f"})

	for _, c := range []struct {
		key      string
		terminal bool
	}{{"t/d/a", true}, {"t/d/b", false}, {"t/d", false}, {"t/d2", true}} {
		info, err := other.Stat(opCtx(t), c.key)
		if err != nil {
			t.Errorf("Stat(%q): %v", c.key, err)
			continue
		}
		if info.Key != c.key || info.IsTerminal != c.terminal {
			t.Errorf("Stat(%q) = {Key:%q IsTerminal:%v}, want {Key:%q IsTerminal:%v}", c.key, info.Key, info.IsTerminal, c.key, c.terminal)
		}
	}
	for _, c := range []struct {
		key    string
		exists bool
	}{
		{"t/d", true}, {"t/d/b", true}, {"t/d/a", true}, {"t/dx", true}, {"t/e/f", true},
		{"t/d/a/z", false}, {"t/d/bb", false}, {"t/d/b/c/z", false}, {"t/dy", false},
	} {
		if got := other.Exists(opCtx(t), c.key); got != c.exists {
			t.Errorf("Exists(%q) = %v, want %v", c.key, got, c.exists)
		}
	}
	for _, k := range []string{"t/d/a/z", "t/d/bb", "t/dy"} {
		if _, err := other.Stat(opCtx(t), k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) of a missing key: want an error wrapping fs.ErrNotExist, got %v", k, err)
		}
	}
	if _, err := other.Load(opCtx(t), "t/d"); err == nil {
		t.Errorf("Load(%q) of a directory succeeded", "t/d")
	}

	// Deleting a single key leaves its siblings and its directory.
	if err := other.Delete(opCtx(t), "t/d/b/c"); err != nil {
		t.Fatalf("Delete(%q): %v", "t/d/b/c", err)
	}
	mustNotExist(t, s, "t/d/b/c", "after Delete")
	mustLoad(t, s, "t/d/b/e", []byte("v"))
	// A directory exists exactly while a key lies below it.
	if err := other.Delete(opCtx(t), "t/e/f/g"); err != nil {
		t.Fatalf("Delete(%q): %v", "t/e/f/g", err)
	}
	for _, k := range []string{"t/e/f", "t/e"} {
		if s.Exists(opCtx(t), k) {
			t.Errorf("Exists(%q) = true after the only key below it was deleted", k)
		}
	}

	// Deleting a prefix removes its subtree and nothing else.
	if err := other.Delete(opCtx(t), "t/d"); err != nil {
		t.Fatalf("Delete(%q): %v", "t/d", err)
	}
	for _, k := range []string{"t/d/a", "t/d/b/e", "t/d/b", "t/d"} {
		mustNotExist(t, s, k, "after Delete of t/d")
	}
	for _, k := range []string{"t/dx/y", "t/d2", "t/d.x"} {
		mustLoad(t, s, k, []byte("v"))
	}
	checkList(t, s, "t", false, []string{"t/dx", "t/d2", "t/d.x"}, nil)
	for _, k := range []string{"t/d", "t/missing", "t/d2/below-a-file"} {
		if err := other.Delete(opCtx(t), k); err != nil {
			t.Errorf("Delete(%q) of a missing key: want nil, got %v", k, err)
		}
	}
	mustLoad(t, s, "t/d2", []byte("v"))
}

func (r *run) testMissingKeys(t *testing.T) {
	s := r.client(t, r.namespace("missing"))
	mustStore(t, s, "here/file", []byte("v"))
	for _, k := range []string{"nothing", "here/nothing", "here/file/below", "her", "here/fil"} {
		mustNotExist(t, s, k, "of a missing key")
		if _, err := s.Stat(opCtx(t), k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat(%q) of a missing key: want an error wrapping fs.ErrNotExist, got %v", k, err)
		}
		if _, err := s.List(opCtx(t), k, false); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("List(%q) of a missing key: want an error wrapping fs.ErrNotExist, got %v", k, err)
		}
		if err := s.Delete(opCtx(t), k); err != nil {
			t.Errorf("Delete(%q) of a missing key: want nil, got %v", k, err)
		}
	}
	mustLoad(t, s, "here/file", []byte("v"))
}

func (r *run) testNoLostWrites(t *testing.T) {
	ns := r.namespace("nolost")
	const writers, perWriter = 16, 10
	clients := []certmagic.Storage{r.client(t, ns), r.client(t, ns), r.client(t, ns), r.client(t, ns)}
	ctx := opCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	var want []string
	for w := range writers {
		for i := range perWriter {
			want = append(want, fmt.Sprintf("w/%02d/%02d", w, i))
		}
		wg.Go(func() {
			s := clients[w%len(clients)]
			for i := range perWriter {
				key := fmt.Sprintf("w/%02d/%02d", w, i)
				if err := s.Store(ctx, key, []byte(key)); err != nil {
					errs <- fmt.Errorf("Store(%q): %w", key, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	reader := r.client(t, ns)
	for _, k := range want {
		mustLoad(t, reader, k, []byte(k))
	}
	var maybe []string
	for w := range writers {
		maybe = append(maybe, fmt.Sprintf("w/%02d", w))
	}
	checkList(t, reader, "w", true, want, maybe)
}

func (r *run) testAtomicReplace(t *testing.T) {
	ns := r.namespace("atomic")
	writer := r.client(t, ns)
	const key, writes, readers = "big", 10, 2
	value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 4*mib) }
	mustStore(t, writer, key, value(0))

	ctx, cancel := context.WithCancel(opCtx(t))
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		s := r.client(t, ns)
		wg.Go(func() {
			for reads := 0; ; reads++ {
				// Read at least once after the last write.
				done := ctx.Err() != nil
				got, err := s.Load(context.WithoutCancel(ctx), key)
				if err != nil {
					errs <- fmt.Errorf("Load(%q) while it was being replaced: %w", key, err)
					return
				}
				if len(got) != 4*mib || bytes.Count(got, got[:1]) != len(got) {
					errs <- fmt.Errorf("Load(%q) while it was being replaced returned %d bytes mixing values (first byte %q, last %q): the replace is not atomic",
						key, len(got), got[:min(1, len(got))], got[max(0, len(got)-1):])
					return
				}
				if done {
					return
				}
			}
		})
	}
	for i := 1; i <= writes; i++ {
		if err := writer.Store(ctx, key, value(i)); err != nil {
			t.Errorf("Store(%q) #%d: %v", key, i, err)
			break
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustLoad(t, r.client(t, ns), key, value(writes))
}
