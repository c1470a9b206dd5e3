package tlsauto

import (
	"github.com/mholt/acmez/v3"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
)

// SetSolverHook makes the Managers created until restore is called adjust
// their DNS-01 solver's settings with f (shorter leases, faster retries).
func SetSolverHook(f func(*dns01.Config)) (restore func()) {
	old := testHooks.solverConfig
	testHooks.solverConfig = f
	return func() { testHooks.solverConfig = old }
}

// SetSolver makes the Managers created until restore is called use the
// DNS-01 solver f returns instead of certfleet's (the benchmark compares
// certmagic's).
func SetSolver(f func(Config) acmez.Solver) (restore func()) {
	old := testHooks.solver
	testHooks.solver = f
	return func() { testHooks.solver = old }
}
