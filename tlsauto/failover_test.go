package tlsauto_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/tlsauto"
)

// TestFailsOverToTheNextCAAndBack runs two members with two CAs: while the
// first refuses every new order, the certificate comes from the second,
// ordered once and served by both members; once the first recovers, a
// renewal goes back to it and reaches both members.
func TestFailsOverToTheNextCAAndBack(t *testing.T) {
	w1 := testacme.Start(t, testacme.Options{})
	// The second CA validates against the first world's DNS server, where
	// the members write their challenge records.
	w2 := testacme.Start(t, testacme.Options{VAResolver: w1.DNSAddr()})
	w1.RefuseNewOrders(true)
	const name = "failover.example.test"
	store := fileStore(t, t.TempDir())
	cfg := testConfig(t, w1, name)
	cfg.Storage = store
	cfg.CA, cfg.CARoots = "", nil
	cfg.CAs = []tlsauto.CA{{URL: w1.DirectoryURL(), Roots: w1.ACMERoots()}, {URL: w2.DirectoryURL(), Roots: w2.ACMERoots()}}
	cfg.SyncInterval = 200 * time.Millisecond
	members := []*tlsauto.Manager{startManager(t, cfg), startManager(t, cfg)}
	addrs := []string{serve(t, members[0]), serve(t, members[1])}

	for i, addr := range addrs {
		leaf := mustHandshake(t, addr, name, w2.Roots())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: w1.Roots()}); err == nil {
			t.Fatalf("member %d serves a certificate of the first CA, which refused every order", i)
		}
	}
	if n1, n2 := len(w1.Orders()), len(w2.Orders()); n1 != 0 || n2 != 1 {
		t.Fatalf("orders: first CA %d, second CA %d; want 0 and 1 (one order for both members)", n1, n2)
	}

	w1.RefuseNewOrders(false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := members[0].Renew(ctx, name); err != nil {
		t.Fatal(err)
	}
	for i, addr := range addrs {
		wait.For(t, time.Minute, fmt.Sprintf("member %d to serve the first CA's certificate again", i), func() bool {
			_, err := handshake(t, addr, name, w1.Roots())
			return err == nil
		})
	}
	if n1 := len(w1.Orders()); n1 != 1 {
		t.Fatalf("the renewal placed %d orders at the recovered first CA, want 1", n1)
	}
}
