package main

import (
	"strings"
	"testing"
)

func TestDemoObtainsAndServesApexAndWildcard(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"obtained 2 certificates over DNS-01",
		"verified request to https://example.test/",
		"verified request to https://www.example.test/",
		"names *.example.test",
		"done in",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
