package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/certfleet/certfleet/internal/wait"
)

// TestSentinelFailoverDuringRenewalLosesNothing forces a Sentinel failover
// (SENTINEL FAILOVER) while one client holds the issuance lock of a name
// (a renewal in progress), another waits for it, and a third writes
// without pause. The renewal completes under the same lock, the waiter
// gets the lock only after the renewal released it and with a greater
// fencing token, and every write acknowledged before, during or after the
// failover is there afterwards.
func TestSentinelFailoverDuringRenewalLosesNothing(t *testing.T) {
	setup := startSentinel(t)
	url := "redis+sentinel://" + setup.sentinelAddrs() + "/mymaster?min_replicas=1"
	prefix := randomPrefix(t)
	open := func() *Storage {
		// With MinReplicas 1 and a single replica, writes (lock refreshes
		// included) stall from the promotion until Sentinel turns the old
		// primary into a replica of the new one, about ten seconds later:
		// the renewal's lock must outlast that.
		return openTestStorage(t, Config{Addr: url, Prefix: prefix, LockTTL: 30 * time.Second, Timeout: time.Second})
	}
	renewer, waiter, writer := open(), open(), open()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const lock = "issue_cert_example.com"

	if err := renewer.Lock(ctx, lock); err != nil {
		t.Fatal(err)
	}
	fence, err := renewer.FencingToken(ctx, lock)
	if err != nil {
		t.Fatal(err)
	}
	var renewing atomic.Bool
	renewing.Store(true)

	var wg sync.WaitGroup
	waited := make(chan error, 1)
	var waiterFence uint64
	wg.Go(func() {
		err := waiter.Lock(ctx, lock)
		for err != nil && ctx.Err() == nil { // Lock gives up on an outage; certmagic would try again
			err = waiter.Lock(ctx, lock)
		}
		if err == nil && renewing.Load() {
			err = errors.New("the waiter acquired the lock while the renewal held it")
		}
		if err == nil {
			waiterFence, err = waiter.FencingToken(ctx, lock)
		}
		waited <- err
	})

	stop := make(chan struct{})
	var mu sync.Mutex
	acked := map[string]string{}
	var failed int
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, v := fmt.Sprintf("writes/%04d", i), fmt.Sprintf("value %d", i)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := writer.Store(wctx, k, []byte(v))
			cancel()
			mu.Lock()
			if err == nil {
				acked[k] = v
			} else {
				failed++
			}
			mu.Unlock()
		}
	})
	acknowledged := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	wait.For(t, 10*time.Second, "writes before the failover", func() bool { return acknowledged() >= 20 })

	old := setup.primaryAddr(t)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: setup.sentinels[0].addr})
	defer sc.Close()
	began := time.Now()
	if err := sc.Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	wait.For(t, 30*time.Second, "the sentinels to promote the replica", func() bool {
		return setup.primaryAddr(t) == setup.replica.addr
	})
	newPrimary := setup.replica.client(t)
	wait.For(t, 60*time.Second, "the old primary to replicate from the new one", func() bool {
		info, err := newPrimary.Info(ctx, "replication").Result()
		return err == nil && containsAll(info, "role:master", "connected_slaves:1")
	})
	n := acknowledged()
	wait.For(t, 30*time.Second, "writes after the failover", func() bool { return acknowledged() >= n+20 })
	t.Logf("failover from %s to %s took %v; %d writes acknowledged so far, %d failed (not acknowledged)",
		old, setup.replica.addr, time.Since(began).Round(time.Millisecond), acknowledged(), failed)

	// The renewal goes on under the lock it took before the failover.
	if got, err := renewer.FencingToken(ctx, lock); err != nil || got != fence {
		t.Fatalf("after the failover, the renewal's fencing token = %d, %v; want %d, still held", got, err, fence)
	}
	if err := renewer.Store(ctx, "certificates/example.com/example.com.crt", []byte("renewed")); err != nil {
		t.Fatalf("storing the renewed certificate after the failover: %v", err)
	}
	select {
	case err := <-waited:
		t.Fatalf("the waiter's Lock returned while the renewal held the lock: %v", err)
	default:
	}
	renewing.Store(false)
	if err := renewer.Unlock(ctx, lock); err != nil {
		t.Fatalf("the renewal's Unlock after the failover: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if waiterFence <= fence {
		t.Errorf("the waiter's fencing token %d is not above the renewal's %d", waiterFence, fence)
	}
	close(stop)
	wg.Wait()

	// Read back through a fresh client: what the new primary has.
	check := open()
	if v, err := check.Load(ctx, "certificates/example.com/example.com.crt"); err != nil || string(v) != "renewed" {
		t.Errorf("renewed certificate after the failover = %q, %v", v, err)
	}
	for k, want := range acked {
		if v, err := check.Load(ctx, k); err != nil || string(v) != want {
			t.Errorf("acknowledged write %s lost in the failover: Load = %q, %v", k, v, err)
		}
	}
	t.Logf("%d acknowledged writes all present", len(acked))
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
