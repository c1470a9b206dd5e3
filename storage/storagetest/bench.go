package storagetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// benchValueSize is about the size of a PEM certificate chain.
const benchValueSize = 4 << 10

// Bench measures a storage's Store, Load and Lock+Unlock throughput with 1
// and 16 concurrent clients, each client made by b.New in its own namespace
// share. Every sub-benchmark reports "ops/s" (operations of all clients
// together per second). Call it from a benchmark function:
//
//	func BenchmarkStorage(b *testing.B) { storagetest.Bench(b, backend) }
//
// Lock+Unlock uses one lock name per client: it measures the cost of an
// uncontended lock round trip, not waiting.
func Bench(b *testing.B, bk Backend) {
	if bk.New == nil {
		b.Fatal("storagetest: Backend.New is nil")
	}
	r := newRun(b, "bench", bk)
	value := make([]byte, benchValueSize)
	for i := range value {
		value[i] = byte('A' + i%26)
	}
	type op func(ctx context.Context, s certmagic.Storage, client, i int) error
	ops := []struct {
		name string
		prep func(b *testing.B, s certmagic.Storage, client int)
		op   op
	}{
		{"Store", nil, func(ctx context.Context, s certmagic.Storage, client, i int) error {
			return s.Store(ctx, fmt.Sprintf("bench/%d/%d", client, i%64), value)
		}},
		{"Load", func(b *testing.B, s certmagic.Storage, client int) {
			for i := range 64 {
				if err := s.Store(context.Background(), fmt.Sprintf("bench/%d/%d", client, i), value); err != nil {
					b.Fatal(err)
				}
			}
		}, func(ctx context.Context, s certmagic.Storage, client, i int) error {
			_, err := s.Load(ctx, fmt.Sprintf("bench/%d/%d", client, i%64))
			return err
		}},
		{"LockUnlock", nil, func(ctx context.Context, s certmagic.Storage, client, i int) error {
			name := fmt.Sprintf("bench-lock-%d", client)
			if err := s.Lock(ctx, name); err != nil {
				return err
			}
			return s.Unlock(ctx, name)
		}},
	}
	for _, o := range ops {
		for _, clients := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", o.name, clients), func(b *testing.B) {
				ns := r.namespace("bench")
				ss := make([]certmagic.Storage, clients)
				for c := range ss {
					ss[c] = r.client(b, ns)
					if o.prep != nil {
						o.prep(b, ss[c], c)
					}
				}
				ctx := context.Background()
				var next atomic.Int64
				var failed atomic.Pointer[error]
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for c, s := range ss {
					wg.Go(func() {
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N || failed.Load() != nil {
								return
							}
							if err := o.op(ctx, s, c, i); err != nil {
								failed.CompareAndSwap(nil, &err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if err := failed.Load(); err != nil {
					b.Fatalf("%s: %v", o.name, *err)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
			})
		}
	}
}
