package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/certfleet/certfleet/internal/changefeed"
)

// Watch reports the key of every value stored or deleted in the directory,
// by any process, until ctx ends or the storage is closed; then the channel
// is closed. An empty key means changes may have been missed: reload
// everything of interest.
//
// On Linux, changes made on this host arrive through inotify as they happen:
// every directory of the storage is watched, and directories created later
// are watched as they appear. Nothing is scanned while nothing changes. If
// the kernel's event queue overflows, Watch sends "".
//
// inotify sees only what this host's kernel does. So Watch also rescans the
// directory every PollInterval when:
//   - the directory is on a network or cluster file system (NFS, SMB/CIFS,
//     CephFS, AFS, GlusterFS and other FUSE file systems, 9P, Lustre, GPFS,
//     OCFS2, GFS2, recognized by statfs), where other hosts may write;
//   - Config.Rescan is set, for a shared file system not recognized;
//   - inotify is unavailable (not Linux, or out of inotify instances or
//     watches: raise fs.inotify.max_user_watches, one watch per directory
//     is needed, about one per certificate).
//
// A rescan reads only the directories whose modification time changed (a
// value is always replaced by renaming a new file into its directory, which
// changes the directory's modification time); it stats the others. On NFS,
// the client's attribute cache (acdirmin, acdirmax) delays what a rescan
// sees of other hosts' changes by up to that cache's lifetime.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	f, err := s.startFeed()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	ch, err := f.hub.Subscribe(ctx)
	if errors.Is(err, changefeed.ErrClosed) {
		err = ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	return ch, nil
}

// feed is the one change feed of a Storage, shared by every Watch call. Its
// goroutine owns dirs and tree.
type feed struct {
	s   *Storage
	hub changefeed.Hub

	fsw  *fsnotify.Watcher // nil when inotify is not used
	dirs map[string]dirCtx // directories inotify watches → their context

	tree   *tree // rescan state; nil when inotify sees everything
	reason string
}

// startFeed returns the storage's feed, starting it on first use: inotify
// watches are in place (and the rescan's baseline taken) before it returns,
// so every later change is reported.
func (s *Storage) startFeed() (*feed, error) {
	s.feedMu.Lock()
	defer s.feedMu.Unlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case s.feed != nil:
		return s.feed, nil
	}
	f := &feed{s: s}
	if err := f.startInotify(); err != nil {
		f.stopInotify()
		f.reason = "inotify unavailable: " + err.Error()
	}
	if f.reason == "" {
		if fsType, shared := sharedFS(s.dir); shared {
			f.reason = "shared file system (" + fsType + ")"
		} else if s.rescan {
			f.reason = "Config.Rescan"
		}
	}
	if f.reason != "" {
		f.tree = newTree()
		if err := f.tree.scan(s.dir, func(string) {}); err != nil {
			f.stopInotify()
			return nil, fmt.Errorf("scanning %s: %w", s.dir, err)
		}
		s.log.Info("watch: rescanning the storage directory periodically", "dir", s.dir, "interval", s.poll, "reason", f.reason)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f.stopInotify()
		return nil, ErrClosed
	}
	s.wg.Add(1)
	go func() { // ends at Close
		defer s.wg.Done()
		f.run()
	}()
	s.feed = f
	return f, nil
}

// startInotify watches every directory of the storage (Linux only).
func (f *feed) startInotify() error {
	if runtime.GOOS != "linux" {
		// fsnotify uses kqueue elsewhere, which holds a descriptor per file.
		return errors.New("no inotify on " + runtime.GOOS)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	f.fsw, f.dirs = w, map[string]dirCtx{}
	return f.watchTree(f.s.dir, dirCtx{}, false)
}

// stopInotify closes the inotify watcher, if any.
func (f *feed) stopInotify() {
	if f.fsw != nil {
		_ = f.fsw.Close()
	}
	f.fsw, f.dirs = nil, nil
}

// watchTree watches dir (context c) and every directory below it, and, when
// publish is set, reports the values found: they may have been written
// before the watch was in place. Each directory is watched before it is
// read, so nothing created meanwhile is missed.
func (f *feed) watchTree(dir string, c dirCtx, publish bool) error {
	if err := f.fsw.Add(dir); err != nil {
		if notExist(err) && dir != f.s.dir {
			return nil // removed meanwhile
		}
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	f.dirs[dir] = c
	err := eachEntry(dir, c, func(kind int, key, path string, below dirCtx) error {
		if kind != entryValue {
			return f.watchTree(path, below, publish)
		}
		if publish {
			f.hub.Publish(key)
		}
		return nil
	})
	if notExist(err) && dir != f.s.dir {
		return nil // removed meanwhile
	}
	return err
}

// run delivers changes until the storage is closed.
func (f *feed) run() {
	defer f.hub.Close()
	defer f.stopInotify()
	var rescan <-chan time.Time
	var timer *time.Timer
	if f.tree != nil {
		timer = time.NewTimer(f.s.poll)
		defer timer.Stop()
		rescan = timer.C
	}
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if f.fsw != nil {
			events, errs = f.fsw.Events, f.fsw.Errors
		}
		select {
		case <-f.s.done:
			return
		case ev := <-events:
			f.handle(ev)
		case err := <-errs:
			f.inotifyError(err)
			if f.fsw == nil && timer == nil { // inotify failed: rescan from now on
				timer = time.NewTimer(f.s.poll)
				defer timer.Stop()
				rescan = timer.C
			}
		case <-rescan:
			began := time.Now()
			err := f.tree.scan(f.s.dir, f.hub.Publish)
			timer.Reset(scanPause(f.s.poll, time.Since(began)))
			if err != nil {
				f.s.log.Warn("watch: rescanning the storage directory failed; retrying", "dir", f.s.dir, "error", err)
			}
		}
	}
}

// handle turns one inotify event into the keys it changed.
func (f *feed) handle(ev fsnotify.Event) {
	c, ok := f.dirs[filepath.Dir(ev.Name)]
	if !ok {
		return // not in a directory of the storage (its ~locks, say)
	}
	name := filepath.Base(ev.Name)
	switch {
	case ev.Has(fsnotify.Create):
		// A value renamed into place, a new directory, or a directory moved
		// in. A path already gone again is followed by its Remove event.
		fi, err := os.Stat(ev.Name)
		if err != nil {
			return
		}
		switch kind, key, below := entry(c, name, fi.IsDir()); kind {
		case entryDir, entryChunk:
			if err := f.watchTree(ev.Name, below, true); err != nil {
				f.inotifyFailed(err)
			}
		case entryValue:
			f.hub.Publish(key)
		}
	case ev.Has(fsnotify.Remove), ev.Has(fsnotify.Rename):
		if _, watched := f.dirs[ev.Name]; watched {
			f.forgetDirs(ev.Name)
			if ev.Has(fsnotify.Rename) {
				// Moved away whole: the keys below it are gone, and which
				// they were is not known here.
				f.hub.Publish("")
			}
			return // a removed directory's values were reported one by one
		}
		if kind, key, _ := entry(c, name, false); kind == entryValue {
			f.hub.Publish(key)
		}
	case ev.Has(fsnotify.Write):
		// Not how this storage writes, but another program may write in place.
		if kind, key, _ := entry(c, name, false); kind == entryValue {
			f.hub.Publish(key)
		}
	}
}

// forgetDirs drops dir and the directories below it from the watched set
// (the kernel drops their watches by itself).
func (f *feed) forgetDirs(dir string) {
	for d := range f.dirs {
		if d == dir || strings.HasPrefix(d, dir+string(filepath.Separator)) {
			delete(f.dirs, d)
		}
	}
}

// inotifyError handles an error from the inotify watcher: an overflowed
// event queue means events were lost.
func (f *feed) inotifyError(err error) {
	if !errors.Is(err, fsnotify.ErrEventOverflow) {
		f.s.log.Warn("watch: inotify error", "dir", f.s.dir, "error", err)
		return
	}
	f.s.log.Warn("watch: inotify event queue overflowed; asking watchers to reload", "dir", f.s.dir)
	if err := f.watchTree(f.s.dir, dirCtx{}, false); err != nil {
		f.inotifyFailed(err)
		return
	}
	f.hub.Publish("")
}

// inotifyFailed falls back to rescans when a directory cannot be watched
// (typically: the inotify watch limit is reached).
func (f *feed) inotifyFailed(err error) {
	f.s.log.Warn("watch: inotify failed; rescanning the storage directory periodically instead", "dir", f.s.dir, "interval", f.s.poll, "error", err)
	f.stopInotify()
	if f.tree == nil {
		f.tree = newTree()
		if err := f.tree.scan(f.s.dir, func(string) {}); err != nil {
			f.s.log.Warn("watch: scanning the storage directory failed; retrying", "dir", f.s.dir, "error", err)
		}
	}
	f.hub.Publish("")
}

// scanPause is how long Watch waits before its next rescan: the poll
// interval, stretched on large directories so that rescanning takes at
// most about a fiftieth of the time, but never beyond a minute unless the
// poll interval itself is longer.
func scanPause(poll, scan time.Duration) time.Duration {
	return min(max(poll, 50*scan), max(poll, time.Minute))
}
