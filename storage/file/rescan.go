package file

import (
	"os"
	"path/filepath"
	"time"
)

// racyWindow: a directory modified less than this long before it was read
// may change again within the same modification-time tick (coarse on some
// network file systems), so it is read again at the next rescan.
const racyWindow = 2 * time.Second

// tree is what the last rescan saw, per directory on disk, so that the next
// one reads only the directories whose modification time changed.
type tree struct {
	dirs map[string]*dirState
}

// dirState is one directory as the last rescan read it.
type dirState struct {
	ctx    dirCtx
	mod    time.Time // the directory's modification time when read
	readAt time.Time
	values map[string]valueState // file name → its key and state
	subs   map[string]dirCtx     // subdirectory path → its context
}

// valueState is what a rescan compares of a value's file. A value is
// replaced by renaming a new file over it, which changes both.
type valueState struct {
	key  string
	mod  time.Time
	size int64
}

func newTree() *tree { return &tree{dirs: map[string]*dirState{}} }

// scan rescans the tree below root and calls changed with the key of every
// value added, replaced or removed since the last scan.
func (t *tree) scan(root string, changed func(key string)) error {
	return t.visit(root, root, dirCtx{}, changed)
}

func (t *tree) visit(root, dir string, c dirCtx, changed func(string)) error {
	fi, err := os.Stat(dir)
	if err != nil {
		if notExist(err) && dir != root {
			t.forget(dir, changed)
			return nil
		}
		return err
	}
	old := t.dirs[dir]
	if old != nil && fi.ModTime().Equal(old.mod) && old.readAt.Sub(old.mod) > racyWindow {
		// Entries unchanged; something deeper may have changed.
		for sub, sc := range old.subs {
			if err := t.visit(root, sub, sc, changed); err != nil {
				return err
			}
		}
		return nil
	}
	st := &dirState{ctx: c, mod: fi.ModTime(), readAt: time.Now(), values: map[string]valueState{}, subs: map[string]dirCtx{}}
	err = eachEntry(dir, c, func(kind int, key, path string, below dirCtx) error {
		if kind != entryValue {
			st.subs[path] = below
			return nil
		}
		vfi, err := os.Stat(path)
		if err != nil {
			return nil // replaced or removed meanwhile: the next rescan sees it
		}
		name := filepath.Base(path)
		v := valueState{key: key, mod: vfi.ModTime(), size: vfi.Size()}
		st.values[name] = v
		if old == nil || old.values[name] != v {
			changed(key)
		}
		return nil
	})
	if err != nil {
		if notExist(err) && dir != root {
			t.forget(dir, changed)
			return nil
		}
		return err
	}
	if old != nil {
		for name, v := range old.values {
			if _, ok := st.values[name]; !ok {
				changed(v.key)
			}
		}
		for sub := range old.subs {
			if _, ok := st.subs[sub]; !ok {
				t.forget(sub, changed)
			}
		}
	}
	t.dirs[dir] = st
	for sub, sc := range st.subs {
		if err := t.visit(root, sub, sc, changed); err != nil {
			return err
		}
	}
	return nil
}

// forget drops a directory that disappeared, reporting its values as
// removed.
func (t *tree) forget(dir string, changed func(string)) {
	st := t.dirs[dir]
	if st == nil {
		return
	}
	delete(t.dirs, dir)
	for _, v := range st.values {
		changed(v.key)
	}
	for sub := range st.subs {
		t.forget(sub, changed)
	}
}
