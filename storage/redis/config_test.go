package redis

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/secretenv"
	"github.com/certfleet/certfleet/storage"
)

// sentinel is a password that must never show up in any output.
const sentinel = "s3ntinel-PASSWORD-Zq9"

func TestConfigRejectsBadInputNamingTheField(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string // in the error
	}{
		{"empty addr", Config{}, "Config.Addr is empty"},
		{"addr without port", Config{Addr: "redis.internal"}, "host:port"},
		{"wrong scheme", Config{Addr: "http://h:1"}, "redis:// or rediss://"},
		{"url without host", Config{Addr: "redis:///0"}, "no host"},
		{"bad db", Config{Addr: "redis://h/zero"}, "database number"},
		{"unknown parameter", Config{Addr: "redis://h?pool=3"}, `unknown URL parameter "pool"`},
		{"bad duration", Config{Addr: "redis://h?lock_ttl=soon"}, "lock_ttl"},
		{"prefix with colon", Config{Addr: "h:1", Prefix: "a:b"}, "Prefix"},
		{"prefix with glob", Config{Addr: "h:1", Prefix: "a*"}, "Prefix"},
		{"long prefix", Config{Addr: "h:1", Prefix: strings.Repeat("p", 65)}, "longer than 64"},
		{"short ttl", Config{Addr: "h:1", LockTTL: 10 * time.Millisecond}, "LockTTL"},
		{"negative timeout", Config{Addr: "h:1", Timeout: -time.Second}, "Timeout"},
		{"conflicting prefix", Config{Addr: "redis://h?prefix=a", Prefix: "b"}, "prefix"},
		{"conflicting ttl", Config{Addr: "redis://h?lock_ttl=3s", LockTTL: 4 * time.Second}, "lock_ttl"},
		{"conflicting password", Config{Addr: "redis://:" + sentinel + "@h", Password: "other"}, "password"},
		{"bad escape in password", Config{Addr: "redis://u:" + sentinel + "%zz@h"}, "not a valid URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(context.Background(), c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New(%v) = %v, want an error mentioning %q", c.cfg, err, c.want)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}

func TestConfigFromURL(t *testing.T) {
	set, err := Config{Addr: "rediss://user:" + sentinel + "@cache.internal/3?prefix=prod&lock_ttl=20s&timeout=2s"}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if len(set.addrs) != 1 || set.addrs[0] != "cache.internal:6379" || set.db != 3 || set.username != "user" || set.password != sentinel ||
		set.prefix != "prod" || set.lockTTL != 20*time.Second || set.timeout != 2*time.Second || set.tls == nil {
		t.Fatalf("settings = %+v", set)
	}
	set, err = Config{Addr: "127.0.0.1:6379"}.validate()
	if err != nil {
		t.Fatal(err)
	}
	if set.prefix != DefaultPrefix || set.lockTTL != DefaultLockTTL || set.timeout != DefaultTimeout || set.tls != nil {
		t.Fatalf("defaults = %+v", set)
	}
}

func TestPasswordNeverPrinted(t *testing.T) {
	cfgs := []Config{
		{Addr: "127.0.0.1:6379", Password: sentinel},
		{Addr: "redis://user:" + sentinel + "@127.0.0.1:6379/0"},
	}
	for _, cfg := range cfgs {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(format, cfg); strings.Contains(out, sentinel) {
				t.Errorf("fmt %s of a Config prints the password: %s", format, out)
			}
			if out := fmt.Sprintf(format, &cfg); strings.Contains(out, sentinel) {
				t.Errorf("fmt %s of a *Config prints the password: %s", format, out)
			}
		}
	}
}

func TestWrongPasswordErrorHidesIt(t *testing.T) {
	addr := testAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := New(ctx, Config{Addr: addr, Username: "certfleet-no-such-user", Password: sentinel})
	if err == nil {
		t.Fatal("New with a wrong user and password succeeded")
	}
	if strings.Contains(err.Error(), sentinel) {
		t.Fatalf("error reveals the password: %v", err)
	}
}

func TestStorageStringHidesPassword(t *testing.T) {
	s := newTestStorage(t)
	if out := fmt.Sprintf("%v %+v %s", s, s, s.String()); !strings.Contains(out, s.prefix) {
		t.Fatalf("String does not name the prefix: %s", out)
	}
}

func TestOpenRegistersSchemes(t *testing.T) {
	addr := testAddr(t)
	if strings.Contains(addr, "://") {
		t.Skip("this test builds its own URL from a host:port address")
	}
	prefix := randomPrefix(t)
	t.Cleanup(func() { deletePrefix(t, prefix) })
	s, err := storage.Open(testCtx(t), "redis://"+addr+"/0?prefix="+prefix+"&lock_ttl=3s")
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	rs, ok := s.(*Storage)
	if !ok {
		t.Fatalf("storage.Open returned %T, want *Storage", s)
	}
	t.Cleanup(func() { _ = rs.Close() })
	if rs.prefix != prefix || rs.lockTTL != 3*time.Second {
		t.Fatalf("opened storage has prefix %q and LockTTL %s", rs.prefix, rs.lockTTL)
	}
	if err := s.Store(testCtx(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenReadsPasswordFromEnvFile(t *testing.T) {
	addr := testAddr(t)
	if strings.Contains(addr, "://") {
		t.Skip("this test builds its own URL from a host:port address")
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte(sentinel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := secretenv.Map(map[string]string{EnvPassword + "_FILE": file})
	u, err := url.Parse("redis://certfleet-no-such-user@" + addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openEnv(testCtx(t), u, env)
	if err == nil {
		t.Fatal("opening with a wrong password from the env file succeeded")
	}
	if strings.Contains(err.Error(), sentinel) {
		t.Fatalf("error reveals the password: %v", err)
	}
	// Redis said no to the password read from the file (and did not see an
	// empty one): its answer is an authentication error.
	if !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("error = %v, want Redis' WRONGPASS", err)
	}
	_, err = openEnv(testCtx(t), u, secretenv.Map(map[string]string{EnvPassword: "a", EnvPassword + "_FILE": file}))
	if err == nil || !strings.Contains(err.Error(), EnvPassword) {
		t.Fatalf("both variable and file set: %v", err)
	}
}
