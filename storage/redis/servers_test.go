package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/wait"
)

// redisServer returns the path of redis-server, which also runs sentinels
// (--sentinel). Outside CI a missing binary skips the test; in CI it fails.
func redisServer(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found (CI=true): install Debian's redis-server: %v", err)
		}
		t.Skip("redis-server not found: install Debian's redis-server to run the Sentinel and Cluster tests")
	}
	return path
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// server is a redis-server (or sentinel) process this test started.
type server struct {
	addr string
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
}

// startServer starts redis-server with a config file made of lines (port,
// bind and dir added) and waits until it answers PING. The process is
// killed when the test ends.
func startServer(t testing.TB, lines []string, args ...string) *server {
	t.Helper()
	bin := redisServer(t)
	port := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "redis.conf")
	all := append([]string{
		"port " + strconv.Itoa(port), "bind 127.0.0.1", "dir " + dir,
		"save \"\"", "appendonly no", "protected-mode no", "loglevel warning",
	}, lines...)
	if err := os.WriteFile(conf, []byte(strings.Join(all, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &server{addr: fmt.Sprintf("127.0.0.1:%d", port), out: &syncbuf.Buffer{}}
	srv.cmd = exec.Command(bin, append([]string{conf}, args...)...)
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	if err := srv.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() {
		_ = srv.cmd.Process.Kill()
		_ = srv.cmd.Wait()
		if t.Failed() {
			t.Logf("output of redis-server %s:\n%s", srv.addr, srv.out.String())
		}
	})
	c := srv.client(t)
	wait.For(t, 20*time.Second, "redis-server at "+srv.addr+" to answer", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
	return srv
}

// client returns a plain client of the server, closed at cleanup.
func (s *server) client(t testing.TB) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: s.addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// envCluster and envSentinel carry the addresses of the servers a test
// started into the child processes of storagetest.Run, which must use the
// same servers instead of starting their own.
const (
	envCluster  = "CERTFLEET_TEST_REDIS_CLUSTER_NODES"
	envSentinel = "CERTFLEET_TEST_REDIS_SENTINELS"
)

// startCluster starts a Redis Cluster of three primaries (no replicas) and
// returns their addresses, comma-separated.
func startCluster(t testing.TB) string {
	t.Helper()
	var nodes []*server
	for range 3 {
		nodes = append(nodes, startServer(t, []string{
			"cluster-enabled yes",
			"cluster-config-file nodes.conf",
			"cluster-port " + strconv.Itoa(freePort(t)),
			"cluster-node-timeout 2000",
		}))
	}
	ctx := testCtx(t)
	const slots = 16384
	var addrs []string
	for i, n := range nodes {
		c := n.client(t)
		lo, hi := i*slots/len(nodes), (i+1)*slots/len(nodes)-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", n.addr, err)
		}
		addrs = append(addrs, n.addr)
	}
	first := nodes[0].client(t)
	for _, n := range nodes[1:] {
		host, port, _ := net.SplitHostPort(n.addr)
		busPort, err := n.client(t).ConfigGet(ctx, "cluster-port").Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := first.Do(ctx, "CLUSTER", "MEET", host, port, busPort["cluster-port"]).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", n.addr, err)
		}
	}
	for _, n := range nodes {
		c := n.client(t)
		wait.For(t, 30*time.Second, "cluster state ok on "+n.addr, func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3")
		})
	}
	return strings.Join(addrs, ",")
}

// sentinelSetup is a primary, a replica and three sentinels monitoring
// them as "mymaster".
type sentinelSetup struct {
	primary, replica *server
	sentinels        []*server
}

// sentinelAddrs returns the sentinels' addresses, comma-separated.
func (s *sentinelSetup) sentinelAddrs() string {
	var a []string
	for _, x := range s.sentinels {
		a = append(a, x.addr)
	}
	return strings.Join(a, ",")
}

// startSentinel starts the primary, its replica and three sentinels, and
// waits until every sentinel knows the replica and the other sentinels.
func startSentinel(t testing.TB) *sentinelSetup {
	t.Helper()
	primary := startServer(t, nil)
	host, port, _ := net.SplitHostPort(primary.addr)
	replica := startServer(t, []string{"replicaof " + host + " " + port})
	ctx := testCtx(t)
	wait.For(t, 30*time.Second, "the replica to sync", func() bool {
		info, err := replica.client(t).Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	setup := &sentinelSetup{primary: primary, replica: replica}
	for range 3 {
		setup.sentinels = append(setup.sentinels, startServer(t, []string{
			"sentinel monitor mymaster " + host + " " + port + " 2",
			"sentinel down-after-milliseconds mymaster 1000",
			"sentinel failover-timeout mymaster 10000",
			"sentinel parallel-syncs mymaster 1",
		}, "--sentinel"))
	}
	for _, sn := range setup.sentinels {
		c := goredis.NewSentinelClient(&goredis.Options{Addr: sn.addr})
		t.Cleanup(func() { _ = c.Close() })
		wait.For(t, 60*time.Second, "sentinel "+sn.addr+" to know the replica and the other sentinels", func() bool {
			reps, err := c.Replicas(ctx, "mymaster").Result()
			if err != nil || len(reps) != 1 || strings.Contains(reps[0]["flags"], "down") ||
				reps[0]["master-link-status"] != "ok" {
				return false
			}
			others, err := c.Sentinels(ctx, "mymaster").Result()
			return err == nil && len(others) == 2
		})
	}
	return setup
}

// primaryAddr asks a sentinel where the primary is.
func (s *sentinelSetup) primaryAddr(t testing.TB) string {
	t.Helper()
	c := goredis.NewSentinelClient(&goredis.Options{Addr: s.sentinels[0].addr})
	defer c.Close()
	a, err := c.GetMasterAddrByName(testCtx(t), "mymaster").Result()
	if err != nil {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	return net.JoinHostPort(a[0], a[1])
}
