package dns01

import (
	"strings"
	"testing"
)

// FuzzParsePropagation holds ParsePropagation to its promises for any
// input: no panic; a name it accepts is one of the five policies, and
// parsing the result again gives it back; what it refuses is named in the
// error.
//
//	go test -run '^$' -fuzz '^FuzzParsePropagation$' -fuzztime 30s ./dnsprovider/dns01/
func FuzzParsePropagation(f *testing.F) {
	for _, seed := range []string{"", "auto", "ALL", " any ", "Resolvers", "skip", "none", "all,any", "\u0130ll", "sk\u0131p", "auto\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePropagation(s)
		if err != nil {
			if p != "" || !strings.Contains(err.Error(), "auto, all, any, resolvers or skip") {
				t.Fatalf("ParsePropagation(%q) = %q, %v: want no policy and an error listing the valid ones", s, p, err)
			}
			return
		}
		switch p {
		case PropagationAuto, PropagationAll, PropagationAny, PropagationResolvers, PropagationSkip:
		default:
			t.Fatalf("ParsePropagation(%q) = %q: not a policy", s, p)
		}
		if again, err := ParsePropagation(string(p)); err != nil || again != p {
			t.Fatalf("ParsePropagation(%q) = %q, %v; want %q again", p, again, err, p)
		}
	})
}
