package dnsprovider

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme/apifake"
	"github.com/libdns/libdns"
)

// scripted is a provider over an in-memory zone that counts calls and fails
// them with queued errors first.
type scripted struct {
	mem *apifake.Memory

	mu    sync.Mutex
	calls map[string][]time.Time // by operation: when each call came
	errs  map[string][]error     // by operation: returned, in order, by the next calls
	// applyThenFail makes a failing append apply the records first (a lost
	// answer).
	applyThenFail bool
}

func newScripted(t *testing.T, zones ...string) *scripted {
	t.Helper()
	return &scripted{mem: apifake.NewMemory(zones...), calls: make(map[string][]time.Time), errs: make(map[string][]error)}
}

// failNext makes the next calls of op fail with errs, in order.
func (s *scripted) failNext(op string, errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[op] = append(s.errs[op], errs...)
}

func (s *scripted) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls[op])
}

// callTimes returns when the calls of op came, in order.
func (s *scripted) callTimes(op string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls[op])
}

func (s *scripted) next(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op] = append(s.calls[op], time.Now())
	if len(s.errs[op]) == 0 {
		return nil
	}
	err := s.errs[op][0]
	s.errs[op] = s.errs[op][1:]
	return err
}

func (s *scripted) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	err := s.next("append")
	if err != nil && !s.applyThenFail {
		return nil, err
	}
	out, aerr := s.mem.AppendRecords(ctx, zone, recs)
	if err != nil {
		return nil, err
	}
	return out, aerr
}

func (s *scripted) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := s.next("delete"); err != nil {
		return nil, err
	}
	return s.mem.DeleteRecords(ctx, zone, recs)
}

func (s *scripted) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	if err := s.next("get"); err != nil {
		return nil, err
	}
	return s.mem.GetRecords(ctx, zone)
}

func (s *scripted) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if err := s.next("set"); err != nil {
		return nil, err
	}
	return s.mem.SetRecords(ctx, zone, recs)
}

func (s *scripted) ListZones(ctx context.Context) ([]libdns.Zone, error) {
	if err := s.next("list"); err != nil {
		return nil, err
	}
	return s.mem.ListZones(ctx)
}

func txt(name, text string) libdns.TXT {
	return libdns.TXT{Name: name, Text: text, TTL: 2 * time.Minute}
}
