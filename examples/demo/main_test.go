package main

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/testacme/bind"
)

func TestDemoObtainsAndServesApexAndWildcard(t *testing.T) {
	checkDemo(t, "builtin", "started ACME CA (Pebble) and DNS server")
}

func TestDemoObtainsAndServesThroughBIND(t *testing.T) {
	bind.Require(t)
	checkDemo(t, "bind", "started BIND 9 (named) for example.test", "validating through BIND")
}

func TestDemoRefusesAnUnknownDNSMode(t *testing.T) {
	var out strings.Builder
	if err := run(&out, "knot"); err == nil || !strings.Contains(err.Error(), `--dns "knot": want builtin or bind`) {
		t.Fatalf("run with --dns knot = %v", err)
	}
}

func checkDemo(t *testing.T, mode string, extra ...string) {
	t.Helper()
	var out strings.Builder
	if err := run(&out, mode); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range append([]string{
		"obtained 2 certificates over DNS-01",
		"then removed: 0 TXT left",
		"verified request to https://example.test/",
		"verified request to https://www.example.test/",
		"names *.example.test",
		"done in",
	}, extra...) {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
