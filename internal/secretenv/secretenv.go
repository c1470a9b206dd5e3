// Package secretenv reads settings from environment variables, where any
// variable NAME may instead be given as a path in NAME_FILE (the convention of
// container secrets). Values read here are never included in errors.
//
// It is shared by the DNS providers (through dnsprovider.LookupEnv), the
// storage backends and tlsauto, which cannot import one another.
package secretenv

import (
	"fmt"
	"os"
	"strings"
)

// Map returns a getenv over a fixed set of variables, for tests.
func Map(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// Lookup returns the value of NAME, or the contents of the file named by
// NAME_FILE (with trailing newlines removed), both read through getenv (nil
// means os.Getenv). Setting both is an error, so that nobody wonders which
// one won. An empty result with a nil error means unset.
func Lookup(getenv func(string) string, name string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	v := getenv(name)
	path := getenv(name + "_FILE")
	switch {
	case path == "":
		return v, nil
	case v != "":
		return "", fmt.Errorf("%s and %s_FILE are both set: set only one", name, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path is not secret; the file's contents are, and are never shown.
		return "", fmt.Errorf("%s_FILE: reading %q: %w", name, path, unwrapPathError(err))
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s_FILE: file %q is empty", name, path)
	}
	return s, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
