package file

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// keyState is what Watch compares between scans. Store replaces a file by
// renaming a new one over it, which always changes its modification time.
type keyState struct {
	mod  time.Time
	size int64
}

// Watch reports the key of every value stored or deleted in the directory, by
// any process, found by scanning the directory every Config.PollInterval; on a
// large directory the pause between scans grows so that scanning takes about
// a fiftieth of the time, up to a minute (or PollInterval, if longer). The
// channel closes when ctx ends or the storage is closed.
func (s *Storage) Watch(ctx context.Context) (<-chan string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("watch: %w", ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	prev, err := s.scan()
	if err != nil {
		s.wg.Done()
		return nil, fmt.Errorf("watch: scanning %s: %w", s.dir, err)
	}
	ch := make(chan string, 16)
	go func() { // owned by ctx and Close
		defer s.wg.Done()
		defer close(ch)
		wait := time.NewTimer(s.poll)
		defer wait.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			case <-wait.C:
			}
			began := time.Now()
			next, err := s.scan()
			wait.Reset(scanPause(s.poll, time.Since(began)))
			if err != nil {
				s.log.Warn("watch: scanning storage directory failed; retrying", "dir", s.dir, "error", err)
				continue
			}
			for _, key := range changed(prev, next) {
				select {
				case ch <- key:
				case <-ctx.Done():
					return
				case <-s.done:
					return
				}
			}
			prev = next
		}
	}()
	return ch, nil
}

// scanPause is how long Watch waits before its next scan: the poll
// interval, stretched on large directories so that scanning takes at most
// about a fiftieth of the time (10,000 certificates are 30,000 files), but
// never beyond a minute unless the poll interval itself is longer.
func scanPause(poll, scan time.Duration) time.Duration {
	return min(max(poll, 50*scan), max(poll, time.Minute))
}

// changed returns the keys whose state differs between two scans, sorted.
func changed(prev, next map[string]keyState) []string {
	var keys []string
	for k, st := range next {
		if old, ok := prev[k]; !ok || old != st {
			keys = append(keys, k)
		}
	}
	for k := range prev {
		if _, ok := next[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// scan returns the state of every value in the storage.
func (s *Storage) scan() (map[string]keyState, error) {
	states := map[string]keyState{}
	var walk func(dir, prefix string) error
	walk = func(dir, prefix string) error {
		err := s.readComponents(dir, func(comp, path string, isDir bool) error {
			key := comp
			if prefix != "" {
				key = prefix + "/" + comp
			}
			if isDir {
				return walk(path, key)
			}
			fi, err := os.Stat(path)
			if err != nil {
				return nil // replaced or deleted meanwhile: the next scan sees it
			}
			states[key] = keyState{mod: fi.ModTime(), size: fi.Size()}
			return nil
		})
		if notExist(err) && dir != s.dir {
			return nil // removed meanwhile
		}
		return err
	}
	return states, walk(s.dir, "")
}
