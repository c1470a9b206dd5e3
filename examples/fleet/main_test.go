package main

import (
	"os"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/backendtest"
)

func TestMain(m *testing.M) {
	if id := os.Getenv(envMember); id != "" { // a member process of the test
		if err := runMember(id, os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFleetExampleOrdersOnceAndSpreadsRenewal(t *testing.T) {
	db := os.Getenv(backendtest.EnvPostgres)
	if db == "" {
		t.Skipf("the fleet example needs PostgreSQL: set %s", backendtest.EnvPostgres)
	}
	t.Setenv("CERTFLEET_STORAGE", db)
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		"ordered the certificate",
		"the CA saw 1 order(s) and issued 1 certificate(s)",
		"renewed the certificate",
		"serves the renewed certificate",
		"all serve serial",
		"the CA saw 2 orders in all",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "loaded the certificate from storage"); n != members-1 {
		t.Errorf("%d members loaded the certificate from storage, want %d:\n%s", n, members-1, out.String())
	}
}
