package etcdtest

import "testing"

func TestClusterOfThreeElectsALeader(t *testing.T) {
	c := Start(t, 3)
	if len(c.Members) != 3 {
		t.Fatalf("%d members", len(c.Members))
	}
	c.Members[0].Kill()
	if c.Members[1].Exited() || !c.Members[1].Healthy() {
		t.Fatal("a two-member majority is not healthy after one member was killed")
	}
}
