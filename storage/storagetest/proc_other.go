//go:build !linux

package storagetest

import (
	"errors"
	"os"
	"os/exec"
)

// processChecks reports whether the checks that start child processes and
// signal them can run here: they rely on Linux's parent-death signal.
const processChecks = false

func setDeathSignal(*exec.Cmd) {}

func pause(*os.Process) error { return errors.ErrUnsupported }

func resume(*os.Process) error { return errors.ErrUnsupported }
