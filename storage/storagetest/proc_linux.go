//go:build linux

package storagetest

import (
	"os"
	"os/exec"
	"syscall"
)

// processChecks reports whether the checks that start child processes and
// signal them can run here.
const processChecks = true

// setDeathSignal makes the kernel kill the child if the parent dies, so that
// no child (even a stopped one) outlives a crashed test binary.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// pause stops p with SIGSTOP, as a long GC pause or a frozen VM would.
func pause(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// resume continues p after pause.
func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
