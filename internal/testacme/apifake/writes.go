package apifake

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

// TXTValues returns the sorted values of the TXT records at name (relative
// to the zone, "@" for the apex) among recs: what a test compares after
// getting the records of a zone from a provider or a backend.
func TXTValues(recs []libdns.Record, name string) []string {
	var out []string
	for _, r := range recs {
		if rr := r.RR(); rr.Type == "TXT" && rr.Name == name {
			out = append(out, rr.Data)
		}
	}
	slices.Sort(out)
	return out
}

// Writer is a DNS provider under test: it appends and deletes records.
type Writer interface {
	libdns.RecordAppender
	libdns.RecordDeleter
}

// CheckWritesThroughFaults appends two TXT values at each of 25 names of
// zone through p, from 5 goroutines, then deletes them all the same way. It
// fails t unless every call succeeds, mem (the backend of the fake p talks
// to) then holds exactly the 50 records, and finally none. Inject faults
// into the fake first (SetFaults): this is how a provider wrapped in
// dnsprovider.WithRetry shows that faults lose or duplicate nothing.
func CheckWritesThroughFaults(t testing.TB, p Writer, mem *Memory, zone string) {
	t.Helper()
	ctx := context.Background()
	var recs []libdns.Record
	for i := range 25 {
		name := fmt.Sprintf("_acme-challenge.h%d", i)
		for _, v := range []string{"a", "b"} {
			recs = append(recs, libdns.TXT{Name: name, Text: v, TTL: 2 * time.Minute})
		}
	}
	run := func(op func(libdns.Record) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(recs))
		work := make(chan libdns.Record)
		for range 5 {
			wg.Go(func() {
				for r := range work {
					errs <- op(r)
				}
			})
		}
		for _, r := range recs {
			work <- r
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("write failed despite retries: %v", err)
			}
		}
	}
	run(func(r libdns.Record) error {
		_, err := p.AppendRecords(ctx, zone, []libdns.Record{r})
		return err
	})
	if all, _ := mem.GetRecords(ctx, zone); len(all) != len(recs) {
		t.Fatalf("backend holds %d records after %d appends, want %d (no duplicates, none missing)", len(all), len(recs), len(recs))
	}
	run(func(r libdns.Record) error {
		_, err := p.DeleteRecords(ctx, zone, []libdns.Record{r})
		return err
	})
	if all, _ := mem.GetRecords(ctx, zone); len(all) != 0 {
		t.Fatalf("%d records orphaned after deleting all: %v", len(all), all)
	}
}
