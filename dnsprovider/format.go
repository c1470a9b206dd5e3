package dnsprovider

import (
	"fmt"
	"log/slog"
)

// label is the description of a wrapper, fixed when it is built, which the
// wrapper embeds for its String, GoString, Format and LogValue. It names
// what the wrapper wraps without formatting it: a provider from elsewhere
// may print its credentials, and even certfleet's own hold them. Every fmt
// verb and every slog handler therefore shows the label and nothing else.
type label string

// String returns the label.
func (l label) String() string { return string(l) }

// GoString is String, for %#v.
func (l label) GoString() string { return string(l) }

// Format writes the label for every verb.
func (l label) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(l)) }

// LogValue is the label as a string.
func (l label) LogValue() slog.Value { return slog.StringValue(string(l)) }

func (l label) describe() string { return string(l) }

// describe returns how a wrapper names the provider p it wraps: the label
// of one of certfleet's wrappers, or else p's Name.
func describe(p Provider) string {
	if d, ok := p.(interface{ describe() string }); ok {
		return d.describe()
	}
	return Name(p)
}
