// Package secretenv reads settings from environment variables, where any
// variable NAME may instead be given as a path in NAME_FILE (the convention of
// container secrets). Values read here are never included in errors.
package secretenv

import (
	"fmt"
	"os"
	"strings"
)

// Getenv looks up a variable; it is os.Getenv by default and a map in tests.
type Getenv func(name string) string

// OS reads the process environment.
var OS Getenv = os.Getenv

// Map returns a Getenv over a fixed set of variables.
func Map(vars map[string]string) Getenv {
	return func(name string) string { return vars[name] }
}

// Lookup returns the value of NAME, or the contents of the file named by
// NAME_FILE (with trailing newlines removed). Setting both is an error, so that
// nobody wonders which one won. An empty result with a nil error means unset.
func (g Getenv) Lookup(name string) (string, error) {
	if g == nil {
		g = OS
	}
	v := g(name)
	path := g(name + "_FILE")
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
