//go:build linux

package fleettest

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill a member if the test process dies, so
// that no member outlives a crashed test binary.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
