package testacme_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme"
)

// vaLoop marks the one goroutine Pebble's va.New starts and nothing stops.
const vaLoop = "pebble/v2/va.VAImpl.processTasks"

// ownGoroutines returns the stacks of live goroutines that run code of the
// test world (Pebble, the DNS and HTTPS servers), and how many of them are
// Pebble VA task loops. The calling goroutine is left out.
func ownGoroutines() (stacks []string, vaLoops int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := strings.Split(string(buf), "\n\n")
	for _, g := range all[1:] { // the first one is ours
		switch {
		case strings.Contains(g, vaLoop):
			vaLoops++
		case strings.Contains(g, "letsencrypt/pebble"),
			strings.Contains(g, "miekg/dns"),
			strings.Contains(g, "internal/testacme."),
			strings.Contains(g, "net/http.(*conn).serve"),
			strings.Contains(g, "net/http/httptest"):
			stacks = append(stacks, g)
		}
	}
	return stacks, vaLoops
}

func TestCloseLeavesOnlyPebbleVALoop(t *testing.T) {
	_, loopsBefore := ownGoroutines()

	w, err := testacme.New(testacme.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.StartDNSServer("127.0.0.2:0"); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, w, nil)
	if _, _, err := c.issue("leak.example.test"); err != nil {
		t.Fatal(err)
	}
	if stacks, _ := ownGoroutines(); len(stacks) == 0 {
		t.Fatal("no goroutines of the running world found; the leak check would see nothing")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		stacks, loops := ownGoroutines()
		if len(stacks) == 0 && loops == loopsBefore+1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: %d VA loops (want %d) and %d other goroutines of the world:\n%s",
				loops, loopsBefore+1, len(stacks), strings.Join(stacks, "\n\n"))
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for an event
	}
}
