package etcdtest

import (
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/wait"
)

func TestClusterOfThreeElectsALeader(t *testing.T) {
	c := Start(t, 3)
	if len(c.Members) != 3 {
		t.Fatalf("%d members", len(c.Members))
	}
	c.Members[0].Kill()
	// The survivors elect a new leader if the killed one led: that takes an
	// election timeout or two.
	if !wait.Until(30*time.Second, func() bool { return c.Members[1].Healthy() }) || c.Members[1].Exited() {
		t.Fatal("a two-member majority is not healthy after one member was killed")
	}
}
