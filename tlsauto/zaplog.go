package tlsauto

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns a zap logger (certmagic's logging API) that writes
// every entry to the slog logger, so a Manager has exactly one log sink: the
// one its user gave.
//
// onACME, if set, is told of every HTTP request the ACME client makes (its
// URL, status code and any Retry-After header), which the client logs at debug level whatever the
// handler's level: certmagic gives no other way to observe them.
func newZapLogger(l *slog.Logger, onACME func(url, status, retryAfter string)) *zap.Logger {
	return zap.New(&slogCore{h: l.Handler(), onACME: onACME})
}

// slogCore is a zapcore.Core writing to a slog.Handler. Fields given to
// With are converted only when an entry is written: certmagic's maintenance
// derives a logger per certificate on every pass, and most of them never
// log at the handler's level.
type slogCore struct {
	h      slog.Handler
	fields []zapcore.Field
	onACME func(url, status, retryAfter string)
}

// Enabled is the handler's level, except that debug entries are let through
// to Check when ACME requests are counted: they are logged at debug level.
func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.handles(l) || c.onACME != nil && l == zapcore.DebugLevel
}

// handles reports whether the handler takes entries of level l.
func (c *slogCore) handles(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	cc := *c
	cc.fields = append(c.fields[:len(c.fields):len(c.fields)], fields...)
	return &cc
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.handles(e.Level) || c.isACMERequest(e) {
		return ce.AddCore(e, c)
	}
	return ce
}

// isACMERequest reports whether e is the ACME client's log of an HTTP
// request.
func (c *slogCore) isACMERequest(e zapcore.Entry) bool {
	return c.onACME != nil && e.Message == "http request" && strings.HasSuffix(e.LoggerName, "acme_client")
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if c.isACMERequest(e) {
		var u, status, retryAfter string
		for _, f := range fields {
			switch f.Key {
			case "url":
				u = f.String
			case "status_code":
				status = strconv.FormatInt(f.Integer, 10)
			case "response_headers":
				if h, ok := f.Interface.(http.Header); ok {
					retryAfter = h.Get("Retry-After")
				}
			}
		}
		c.onACME(u, status, retryAfter)
		if !c.handles(e.Level) {
			return nil
		}
	}
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(fieldAttrs(c.fields)...)
	r.AddAttrs(fieldAttrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func fieldAttrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(fields))
	for _, f := range fields {
		// One encoder per field keeps the fields in the order they were given.
		enc := zapcore.NewMapObjectEncoder()
		f.AddTo(enc)
		for k, v := range enc.Fields {
			attrs = append(attrs, slog.Any(k, v))
		}
	}
	return attrs
}
