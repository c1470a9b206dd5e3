package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// goredisLog receives what go-redis logs through its process-wide logger.
// go-redis cannot say which client a report comes from, so each one goes to
// the Logger of every open Storage (each distinct *slog.Logger once), or
// nowhere when there is none. Before the first New, go-redis prints to
// stderr; from then on, never.
var goredisLog = &logRouter{loggers: map[*logEntry]*slog.Logger{}}

// logEntry identifies one Storage's logger in the router.
type logEntry struct{ _ byte }

// logRouter is go-redis' logger (its Printf method), installed by New.
type logRouter struct {
	install sync.Once

	mu      sync.Mutex
	loggers map[*logEntry]*slog.Logger // of open Storages with a Config.Logger
}

// add installs r as go-redis' logger (once per process) and routes its
// reports to l (which may be nil) until remove is called with the entry
// returned.
func (r *logRouter) add(l *slog.Logger) *logEntry {
	r.install.Do(func() { goredis.SetLogger(r) })
	e := &logEntry{}
	if l != nil {
		r.mu.Lock()
		r.loggers[e] = l
		r.mu.Unlock()
	}
	return e
}

// remove stops routing reports to the logger of e.
func (r *logRouter) remove(e *logEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.loggers, e)
}

// Printf implements go-redis' logging interface. go-redis formats no
// passwords into its reports; they are passed on at debug level, since this
// package logs the failures that matter itself.
func (r *logRouter) Printf(ctx context.Context, format string, v ...any) {
	r.mu.Lock()
	seen := make(map[*slog.Logger]bool, len(r.loggers))
	targets := make([]*slog.Logger, 0, len(r.loggers))
	for _, l := range r.loggers {
		if !seen[l] {
			seen[l] = true
			targets = append(targets, l)
		}
	}
	r.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	if ctx == nil {
		ctx = context.Background()
	}
	for _, l := range targets {
		l.DebugContext(ctx, "go-redis: "+msg, "storage", "redis")
	}
}
