package redis

import (
	"strings"
	"testing"

	"github.com/certfleet/certfleet/internal/secrettest"
)

// FuzzKeyEncoding holds the mapping of storage keys to Redis keys to its
// promises for any key: no panic; an accepted key has no empty component
// and no leading or trailing slash, cleaning it again changes nothing, and
// its Redis key is the storage's hash-tagged prefix, the value marker and
// the key, so that two keys never share a Redis key and every key lands in
// the storage's Cluster slot.
//
//	go test -run '^$' -fuzz '^FuzzKeyEncoding$' -fuzztime 30s ./storage/redis/
func FuzzKeyEncoding(f *testing.F) {
	for _, seed := range []string{"certificates/x/example.com.crt", "/a/b/", "a//b", "", "/", "{tag}:v:x", "\x00", "b\xffcher"} {
		f.Add(seed)
	}
	s := &Storage{p: "{certfleet}"}
	f.Fuzz(func(t *testing.T, key string) {
		k, root, err := cleanKey(key)
		if err != nil {
			return
		}
		if root != (k == "") || strings.HasPrefix(k, "/") || strings.HasSuffix(k, "/") || strings.Contains(k, "//") {
			t.Fatalf("cleanKey(%q) = %q, %t: not a clean key", key, k, root)
		}
		if again, _, err := cleanKey(k); err != nil || again != k {
			t.Fatalf("cleanKey(%q) = %q, %v; want it unchanged", k, again, err)
		}
		if _, err := fileKey(key); (err != nil) != root {
			t.Fatalf("fileKey(%q): %v; want an error exactly for the root", key, err)
		}
		if vk := s.valueKey(k); vk != "{certfleet}:v:"+k {
			t.Fatalf("valueKey(%q) = %q", k, vk)
		}
	})
}

// FuzzConfigURL holds the parsing of redis URLs (Config.Addr, as
// storage.Open passes them) to its promises for any URL: no panic, and no
// error shows the URL's password.
//
//	go test -run '^$' -fuzz '^FuzzConfigURL$' -fuzztime 30s ./storage/redis/
func FuzzConfigURL(f *testing.F) {
	for _, seed := range [][4]string{
		{"redis", "u", "127.0.0.1:6379", "/0?prefix=p&lock_ttl=10s"},
		{"rediss+sentinel", "", "s1:26379,s2", "/master/1?min_replicas=x"},
		{"redis+cluster", "admin", "c1:7000,c2:7000", "/3"},
		{"redis", "u", "h:notaport", ""},
		{"redis", "u", "[::1", "/x"},
		{"redis+ring", "u", "h", "?timeout=soon"},
		{"redis", "u%zz", "h", "?pool=3"},
	} {
		f.Add(seed[0], seed[1], "s3cretSENTINEL", seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, scheme, user, password, host, rest string) {
		raw := scheme + "://" + user + ":" + password + "@" + host + rest
		_, err := Config{Addr: raw}.validate()
		if err == nil {
			return
		}
		if pw, ok := secrettest.URLPassword(raw); ok && strings.Contains(err.Error(), pw) {
			t.Fatalf("the error about %q shows its password: %v", raw, err)
		}
	})
}
