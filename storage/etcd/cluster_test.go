package etcd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/etcdtest"
)

// TestClusterMemberKilledDuringRenewal holds a lock on a three-member
// cluster, kills (SIGKILL) the leader while the holder renews its lease and
// writes the renewed certificate under the lock, and checks that the holder
// keeps the lock throughout (another client waiting for it never gets it
// meanwhile), that the renewal's writes complete, and that the waiter gets
// the lock, with a larger fencing token, once the holder releases it.
func TestClusterMemberKilledDuringRenewal(t *testing.T) {
	c := etcdtest.Start(t, 3)
	endpoints := strings.Split(c.Endpoints(), ",")
	prefix := randomPrefix(t)
	open := func() *Storage {
		return openTestStorage(t, Config{Endpoints: endpoints, Prefix: prefix, LockTTL: 2 * time.Second, Timeout: time.Second})
	}
	holder, waiter := open(), open()
	ctx := testCtx(t)
	const name = "issue_cert_renew.example.test"
	if err := holder.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	first, err := holder.FencingToken(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	acquired := make(chan error, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() { acquired <- waiter.Lock(wctx, name) }()

	// The leader is the member whose own status names it leader.
	raw := rawClient(t, endpoints)
	leader := -1
	for i, m := range c.Members {
		st, err := raw.Status(ctx, m.ClientURL)
		if err == nil && st.Leader == st.Header.MemberId {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no member reports itself leader")
	}

	// The renewal: lease renewals and certificate writes under the lock,
	// for three lock TTLs, with the leader killed after the first round.
	start := time.Now()
	for round := 0; time.Since(start) < 3*holder.lockTTL; round++ {
		if round == 1 {
			c.Members[leader].Kill()
			t.Logf("killed leader %s", c.Members[leader].Name)
		}
		if err := holder.RenewLockLease(ctx, name, time.Minute); err != nil {
			t.Fatalf("RenewLockLease after the leader was killed: %v", err)
		}
		if err := holder.Store(ctx, "certificates/renew.example.test.crt", []byte{byte(round)}); err != nil {
			t.Fatalf("Store under the lock after the leader was killed: %v", err)
		}
		select {
		case err := <-acquired:
			t.Fatalf("the waiter acquired the lock (err %v) while its holder renewed it: the lock was held twice", err)
		case <-time.After(100 * time.Millisecond): // pace of the renewal's steps
		}
	}
	if tok, err := holder.FencingToken(ctx, name); err != nil || tok != first {
		t.Fatalf("FencingToken after the renewal = %d, %v; want %d", tok, err, first)
	}
	if err := holder.Unlock(ctx, name); err != nil {
		t.Fatalf("Unlock after the renewal: %v", err)
	}
	select {
	case err := <-acquired:
		if err != nil {
			t.Fatalf("waiter's Lock: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the waiter did not get the lock after its holder released it")
	}
	next, err := waiter.FencingToken(ctx, name)
	if err != nil || next <= first {
		t.Fatalf("waiter's fencing token %d, %v; want more than %d", next, err, first)
	}
	if err := waiter.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
}
