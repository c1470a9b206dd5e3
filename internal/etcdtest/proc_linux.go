package etcdtest

import "syscall"

// sysProcAttr makes the kernel kill a member when the test process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
