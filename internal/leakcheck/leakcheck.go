// Package leakcheck finds goroutines that outlive the code that started
// them, for tests that assert Close leaves nothing behind.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
)

// Snapshot is the set of goroutines running at one moment.
type Snapshot map[string]bool

// Take returns the goroutines running now.
func Take() Snapshot {
	s := Snapshot{}
	for _, g := range goroutines() {
		s[id(g)] = true
	}
	return s
}

// Check fails t unless every goroutine started since before has ended
// within timeout, ignoring those whose stack contains one of allow (known
// exceptions, named by a function in their stack).
func (before Snapshot) Check(t testing.TB, timeout time.Duration, allow ...string) {
	t.Helper()
	var leaked []string
	wait.Until(timeout, func() bool {
		leaked = leaked[:0]
		for _, g := range goroutines() {
			if !before[id(g)] && !allowed(g, allow) {
				leaked = append(leaked, g)
			}
		}
		return len(leaked) == 0
	})
	if len(leaked) > 0 {
		t.Errorf("%d goroutine(s) leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

func allowed(g string, allow []string) bool {
	if strings.Contains(g, "leakcheck.goroutines") || strings.Contains(g, "testing.(*T).Run") ||
		strings.Contains(g, "testing.tRunner.func") {
		return true
	}
	for _, a := range allow {
		if strings.Contains(g, a) {
			return true
		}
	}
	return false
}

func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// id returns "goroutine N" from a stack's first line.
func id(g string) string {
	first, _, _ := strings.Cut(g, "\n")
	if i := strings.Index(first, " ["); i >= 0 {
		return first[:i]
	}
	return first
}
