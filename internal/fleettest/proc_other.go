//go:build !linux

package fleettest

import "os/exec"

// setDeathSignal does nothing here: members exit when their standard input
// closes, which it does when the test process dies.
func setDeathSignal(*exec.Cmd) {}
