package redis

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

func TestConfigSentinelAndClusterURLs(t *testing.T) {
	cases := []struct {
		cfg    Config
		mode   string
		addrs  []string
		master string
		db     int
	}{
		{Config{Addr: "redis+sentinel://:" + sentinel + "@s1,s2:26380/certs/2"}, modeSentinel, []string{"s1:26379", "s2:26380"}, "certs", 2},
		{Config{Addr: "rediss+sentinel://s1/certs"}, modeSentinel, []string{"s1:26379"}, "certs", 0},
		{Config{Addr: "redis+cluster://c1:7000,c2:7001?prefix=p"}, modeCluster, []string{"c1:7000", "c2:7001"}, "", 0},
		{Config{Addr: "c1:7000, c2:7001", Cluster: true}, modeCluster, []string{"c1:7000", "c2:7001"}, "", 0},
		{Config{Addr: "s1:26379,s2:26379", MasterName: "certs"}, modeSentinel, []string{"s1:26379", "s2:26379"}, "certs", 0},
		{Config{Addr: "redis+sentinel://s1/certs", MasterName: "certs"}, modeSentinel, []string{"s1:26379"}, "certs", 0},
	}
	for _, c := range cases {
		set, err := c.cfg.validate()
		if err != nil {
			t.Errorf("%v: %v", c.cfg, err)
			continue
		}
		if set.mode != c.mode || !slices.Equal(set.addrs, c.addrs) || set.master != c.master || set.db != c.db {
			t.Errorf("%v: mode %s, addrs %q, master %q, db %d; want %s, %q, %q, %d",
				c.cfg, set.mode, set.addrs, set.master, set.db, c.mode, c.addrs, c.master, c.db)
		}
	}
	if set, _ := (Config{Addr: "rediss+cluster://c1,c2"}).validate(); set.tls == nil || set.tls.ServerName != "" {
		t.Errorf("rediss+cluster:// with two hosts: TLS %v, want TLS without a fixed server name", set.tls)
	}
}

func TestConfigRejectsBadDeploymentsNamingTheFix(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"sentinel without master", Config{Addr: "redis+sentinel://s1:26379"}, "mastername"},
		{"both modes", Config{Addr: "h:1", MasterName: "m", Cluster: true}, "set one"},
		{"several hosts, no mode", Config{Addr: "h:1,h:2"}, "set MasterName"},
		{"several hosts in redis://", Config{Addr: "redis://h:1,h:2"}, "set MasterName"},
		{"cluster db", Config{Addr: "redis+cluster://h:1/3"}, "only database 0"},
		{"cluster min replicas", Config{Addr: "redis+cluster://h:1?min_replicas=1"}, "not supported with Redis Cluster"},
		{"negative min replicas", Config{Addr: "h:1", MinReplicas: -1}, "MinReplicas"},
		{"url mode disagrees", Config{Addr: "redis+cluster://h:1", MasterName: "m"}, "set only one"},
		{"master disagrees", Config{Addr: "redis+sentinel://h/a", MasterName: "b"}, "master name"},
		{"bad port", Config{Addr: "redis+cluster://h:1,h:x"}, "not a valid URL"},
		{"unknown scheme", Config{Addr: "redis+ring://h"}, "redis+sentinel://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.cfg.validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("validate(%v) = %v, want an error mentioning %q", c.cfg, err, c.want)
			}
		})
	}
}

func TestSentinelPasswordNeverPrinted(t *testing.T) {
	cfg := Config{Addr: "s1:26379", MasterName: "m", SentinelPassword: sentinel}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, cfg); strings.Contains(out, sentinel) {
			t.Fatalf("%s of Config reveals the sentinel password: %s", format, out)
		}
	}
}
