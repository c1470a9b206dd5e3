package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage"
)

// vanished matches the race in which a concurrent Delete prunes a directory
// that Store has just created: Store then starts over.
var vanished = storage.RetryPolicy{
	MaxAttempts: 10,
	BaseDelay:   time.Millisecond,
	MaxDelay:    20 * time.Millisecond,
	Transient:   func(err error) bool { return errors.Is(err, errVanished) },
}

var errVanished = errors.New("directory removed concurrently")

// notExist reports whether a file system error means the key is missing: no
// such file, or a component of its path is a value rather than a directory.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// missing returns the error for a key that does not exist.
func missing(op, key string) error {
	return fmt.Errorf("%s %q: %w", op, key, fs.ErrNotExist)
}

// Store writes value at key atomically and durably.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	comps, err := splitKey(key)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	path := keyPath(s.dir, comps)
	err = vanished.Do(ctx, func(context.Context) error { return s.writeFile(path, value) })
	if err != nil {
		return fmt.Errorf("store %q: %w", key, err)
	}
	return nil
}

// writeFile writes a temporary file next to path, syncs it, renames it over
// path and syncs the directory.
func (s *Storage) writeFile(path string, value []byte) error {
	dir := filepath.Dir(path)
	if err := s.mkdirs(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		return errVanished
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(value)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			err = errors.New("the key is a directory (a prefix of other keys) and cannot also hold a value")
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// mkdirs creates dir and its missing parents below s.dir, syncing each parent
// that gains an entry so that the new directories survive a crash.
func (s *Storage) mkdirs(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return errors.New("a prefix of the key holds a value and cannot also be a directory")
		}
		return nil
	}
	if !notExist(err) || dir == s.dir || !strings.HasPrefix(dir, s.dir) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	err = os.Mkdir(dir, 0o700)
	switch {
	case errors.Is(err, fs.ErrExist):
		return s.mkdirs(dir) // created concurrently; check it is a directory
	case errors.Is(err, fs.ErrNotExist):
		return errVanished
	case err != nil:
		return err
	}
	return syncDir(parent)
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist if key
// holds no value.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	comps, err := splitKey(key)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	b, err := os.ReadFile(keyPath(s.dir, comps))
	switch {
	case notExist(err):
		return nil, missing("load", key)
	case errors.Is(err, syscall.EISDIR):
		return nil, fmt.Errorf("load %q: the key is a directory, not a value: %w", key, fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("load %q: %w", key, err)
	}
	return b, nil
}

// Delete removes key and, if it is a directory, every key below it. Deleting
// a missing key is not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	comps, err := splitKey(key)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	path := keyPath(s.dir, comps)
	// A concurrent Store into the subtree can make RemoveAll fail once; the
	// key must be gone when Delete returns nil.
	for attempt := 0; ; attempt++ {
		err = os.RemoveAll(path)
		if err == nil || notExist(err) || attempt == 4 {
			break
		}
	}
	if err != nil && !notExist(err) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := s.prune(filepath.Dir(path)); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// prune removes dir and its parents below s.dir while they are empty, so
// that a directory exists exactly while a key lies below it, then syncs the
// first directory that stays.
func (s *Storage) prune(dir string) error {
	for dir != s.dir && strings.HasPrefix(dir, s.dir) {
		// Rmdir, not Remove: a path that is a value must never be removed here.
		err := syscall.Rmdir(dir)
		if err != nil && !notExist(err) {
			break // not empty, or not a directory: stop here
		}
		dir = filepath.Dir(dir)
	}
	err := syncDir(dir)
	if notExist(err) {
		return nil
	}
	return err
}

// Exists reports whether key holds a value or is a directory with keys below
// it. When the answer cannot be known (an I/O error), it reports true: a
// false answer makes certmagic replace what it has.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	comps, err := splitKey(key)
	if err != nil {
		return false
	}
	fi, err := os.Stat(keyPath(s.dir, comps))
	switch {
	case notExist(err):
		return false
	case err != nil:
		return true
	case fi.IsDir():
		return s.hasKeys(keyPath(s.dir, comps))
	}
	return true
}

// hasKeys reports whether a directory holds any key (not only leftovers of
// the storage itself); on error it reports true.
func (s *Storage) hasKeys(dir string) bool {
	ents, err := os.ReadDir(dir)
	if notExist(err) {
		return false
	}
	if err != nil {
		return true
	}
	for _, e := range ents {
		if !internal(e.Name()) {
			return true
		}
	}
	return false
}

// Stat describes key.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := ctx.Err(); err != nil {
		return certmagic.KeyInfo{}, err
	}
	comps, err := splitKey(key)
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat: %w", err)
	}
	path := keyPath(s.dir, comps)
	fi, err := os.Stat(path)
	switch {
	case notExist(err), err == nil && fi.IsDir() && !s.hasKeys(path):
		return certmagic.KeyInfo{}, missing("stat", key)
	case err != nil:
		return certmagic.KeyInfo{}, fmt.Errorf("stat %q: %w", key, err)
	}
	info := certmagic.KeyInfo{Key: key, Modified: fi.ModTime(), IsTerminal: !fi.IsDir()}
	if info.IsTerminal {
		info.Size = fi.Size()
	}
	return info, nil
}

// List returns the keys directly below prefix or, if recursive, every key
// and directory below it. A prefix that is neither a value nor a directory
// gives an error wrapping fs.ErrNotExist; a value has nothing below it.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir := s.dir
	var comps []string
	if prefix != "" {
		var err error
		if comps, err = splitKey(prefix); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		dir = keyPath(s.dir, comps)
	}
	fi, err := os.Stat(dir)
	switch {
	case notExist(err):
		return nil, missing("list", prefix)
	case err != nil:
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	case !fi.IsDir():
		return nil, nil
	}
	var keys []string
	if err := s.list(ctx, dir, prefix, recursive, &keys); err != nil {
		if notExist(err) && len(keys) == 0 && prefix != "" && !s.Exists(ctx, prefix) {
			return nil, missing("list", prefix)
		}
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	if len(keys) == 0 && prefix != "" {
		return nil, missing("list", prefix) // an empty directory being pruned
	}
	return keys, nil
}

// list appends the keys in dir (the directory of key prefix) to keys.
func (s *Storage) list(ctx context.Context, dir, prefix string, recursive bool, keys *[]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return readKeys(dir, dirCtx{prefix: prefix}, func(key, path string, isDir bool, c dirCtx) error {
		*keys = append(*keys, key)
		if recursive && isDir {
			err := s.list(ctx, path, key, true, keys)
			if notExist(err) {
				return nil // deleted meanwhile
			}
			return err
		}
		return nil
	})
}

// dirCtx is what a directory on disk means for the keys below it: the key
// of the directory (prefix, "" for the root) and, inside the continuation
// directories of a long component, the chunks of the component so far.
type dirCtx struct {
	prefix string
	chunks []string
}

// Kinds of directory entries, as entry classifies them.
const (
	entrySkip  = iota // the storage's own file (lock, temporary) or a foreign one
	entryValue        // the file holding a key's value
	entryDir          // the directory of a key prefix
	entryChunk        // a continuation directory of a long component
)

// entry classifies the entry name, a directory when isDir, of a directory
// with context c. It returns the key the entry stands for (values and key
// directories) and, for directories, the context of what lies below.
func entry(c dirCtx, name string, isDir bool) (kind int, key string, below dirCtx) {
	if internal(name) {
		return entrySkip, "", dirCtx{}
	}
	all := append(c.chunks[:len(c.chunks):len(c.chunks)], name)
	if isChunk(name) {
		if !isDir {
			return entrySkip, "", dirCtx{}
		}
		return entryChunk, "", dirCtx{prefix: c.prefix, chunks: all}
	}
	var joined strings.Builder
	for _, chunk := range all {
		joined.WriteString(strings.TrimSuffix(chunk, chunkSuffix))
	}
	comp, ok := decodeName(joined.String())
	if !ok || !validEncoding(comp, all) {
		return entrySkip, "", dirCtx{} // not written by this storage
	}
	key = comp
	if c.prefix != "" {
		key = c.prefix + "/" + comp
	}
	if isDir {
		return entryDir, key, dirCtx{prefix: key}
	}
	return entryValue, key, dirCtx{}
}

// readKeys calls f for each key stored in dir (a directory with context c),
// values and directories, joining the chunks of long components, with the
// path of its file or directory and, for directories, their context.
func readKeys(dir string, c dirCtx, f func(key, path string, isDir bool, below dirCtx) error) error {
	err := eachEntry(dir, c, func(kind int, key, path string, below dirCtx) error {
		switch kind {
		case entryChunk:
			return readKeys(path, below, f)
		case entryDir:
			return f(key, path, true, below)
		}
		return f(key, path, false, below)
	})
	if len(c.chunks) > 0 && notExist(err) {
		return nil // a continuation directory removed meanwhile
	}
	return err
}

// eachEntry reads dir (a directory with context c) and calls f for each
// entry that is a value, a key directory or a continuation directory (see
// entry), with its path.
func eachEntry(dir string, c dirCtx, f func(kind int, key, path string, below dirCtx) error) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		isDir, ok := entryIsDir(path, e)
		if !ok {
			continue
		}
		kind, key, below := entry(c, e.Name(), isDir)
		if kind == entrySkip {
			continue
		}
		if err := f(kind, key, path, below); err != nil {
			return err
		}
	}
	return nil
}

// entryIsDir reports whether a directory entry is a directory, following
// symbolic links; ok is false when a link cannot be followed.
func entryIsDir(path string, e fs.DirEntry) (isDir, ok bool) {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.IsDir(), true
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, false
	}
	return fi.IsDir(), true
}
