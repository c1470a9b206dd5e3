package redis

import (
	"os"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/storagetest"
)

// deploymentBackend describes a Storage on the deployment that url (minus
// its prefix) reaches, for storagetest.
func deploymentBackend(url string) storagetest.Backend {
	return storagetest.Backend{
		New: func(t testing.TB, namespace string) certmagic.Storage {
			t.Helper()
			return openTestStorage(t, Config{Addr: url, Prefix: namespace, LockTTL: conformanceTTL, Timeout: time.Second})
		},
		LockTTL: conformanceTTL,
	}
}

// TestConformanceOnCluster runs the conformance suite on a Redis Cluster of
// three primaries this test starts (the suite's child processes reuse it).
// Every key of a storage shares one hash slot, so the scripts run on one
// node; the change feed is a sharded subscription.
func TestConformanceOnCluster(t *testing.T) {
	nodes := os.Getenv(envCluster)
	if nodes == "" {
		nodes = startCluster(t)
		t.Setenv(envCluster, nodes)
	}
	storagetest.Run(t, deploymentBackend("redis+cluster://"+nodes))
}

// TestConformanceOnSentinel runs the conformance suite through three
// sentinels this test starts, monitoring a primary and its replica, with
// writes waiting for the replica.
func TestConformanceOnSentinel(t *testing.T) {
	sentinels := os.Getenv(envSentinel)
	if sentinels == "" {
		sentinels = startSentinel(t).sentinelAddrs()
		t.Setenv(envSentinel, sentinels)
	}
	storagetest.Run(t, deploymentBackend("redis+sentinel://"+sentinels+"/mymaster?min_replicas=1"))
}

// BenchmarkStorageCluster is BenchmarkStorage on a 3-primary Redis Cluster
// the benchmark starts on loopback (or the one
// CERTFLEET_TEST_REDIS_CLUSTER_NODES names), beside the single server.
//
//	CERTFLEET_TEST_REDIS=127.0.0.1:6379 go test -run '^$' -bench 'BenchmarkStorage' -benchtime 1s -count 3 ./storage/redis/
func BenchmarkStorageCluster(b *testing.B) {
	nodes := os.Getenv(envCluster)
	if nodes == "" {
		nodes = startCluster(b)
	}
	storagetest.Bench(b, deploymentBackend("redis+cluster://"+nodes))
}
