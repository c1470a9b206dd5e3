package rfc2136_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
	librfc2136 "github.com/libdns/rfc2136"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/testacme/bind"
)

// BenchmarkTwentyConcurrentAppends measures 20 AppendRecords calls made at
// once (a fleet member obtaining 20 names) against a BIND 9 with its default
// tcp-listen-queue of 10, with this package's provider and with
// libdns/rfc2136, which opens a connection per call without bound.
//
//	go test -run '^$' -bench BenchmarkTwentyConcurrentAppends -benchtime 20x ./dnsprovider/rfc2136/
func BenchmarkTwentyConcurrentAppends(b *testing.B) {
	ns := bind.Start(b, bind.Options{TCPListenQueue: 10})
	for _, side := range []struct {
		name string
		p    dnsprovider.Provider
	}{
		{"ours", bindProvider(b, ns, nil)},
		{"libdns", &librfc2136.Provider{KeyName: ns.KeyName(), KeyAlg: ns.Algorithm(), Key: ns.Secret(), Server: ns.Addr()}},
	} {
		b.Run(side.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for j := range 20 {
					wg.Go(func() {
						rec := libdns.TXT{Name: fmt.Sprintf("_acme-challenge.%s-%d-%d", side.name, i, j), TTL: time.Minute, Text: "x"}
						if _, err := side.p.AppendRecords(context.Background(), "example.test.", []libdns.Record{rec}); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}
