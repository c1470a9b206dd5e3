package dns01

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/quarantine"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage/encrypt"
)

// abandon stops s as if its process had died: no more lease renewals, no
// cleanup, records and journal entries left as they are.
func abandon(s *Solver) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.ops.Wait()
	s.loops.Wait()
	s.closeOnce.Do(func() {})
}

func TestSweepDeletesRecordsOfAMemberWhoseLeaseLapsed(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	cfg := w.config(t, nil)
	cfg.OwnerLease = 300 * time.Millisecond
	dead := newTestSolver(t, cfg)
	ctx := context.Background()
	for _, tok := range []string{"apex", "wildcard"} {
		if err := dead.Present(ctx, challenge("example.test", tok)); err != nil {
			t.Fatal(err)
		}
	}
	abandon(dead)
	if got := w.Zones().TXT("_acme-challenge.example.test"); len(got) != 2 {
		t.Fatalf("TXT values of the dead member: %q, want 2", got)
	}

	// The next member sweeps at start, and again when the lease lapses.
	next := newTestSolver(t, w.config(t, nil))
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the dead member's records to be deleted", func() bool {
		return len(w.challengeTXT(t, "example.test")) == 0 && len(w.journal(t)) == 0
	})
	wait.For(t, 20*time.Second, "the dead member's lease to be deleted", func() bool {
		keys, _ := w.storage.List(ctx, ownersPrefix, false)
		return len(keys) == 1 && strings.HasSuffix(keys[0], next.id)
	})
}

func TestSweepDeletesRecordsWithoutLeaseAtOnce(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	dead := newTestSolver(t, w.config(t, nil))
	ctx := context.Background()
	if err := dead.Present(ctx, challenge("example.test", "tok")); err != nil {
		t.Fatal(err)
	}
	abandon(dead)
	if err := w.storage.Delete(ctx, ownerKey(dead.id)); err != nil {
		t.Fatal(err)
	}
	// Sweep and the sweep that starting the solver begins may each do it.
	sweeper := newTestSolver(t, w.config(t, nil))
	if _, err := sweeper.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the record to be deleted", func() bool {
		return len(w.challengeTXT(t, "example.test")) == 0 && len(w.journal(t)) == 0
	})
}

func TestSweepLeavesRecordsOfLiveMembers(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	live := newTestSolver(t, w.config(t, nil))
	ctx := context.Background()
	if err := live.Present(ctx, challenge("example.test", "tok")); err != nil {
		t.Fatal(err)
	}
	other := newTestSolver(t, w.config(t, nil))
	removed, err := other.Sweep(ctx)
	if err != nil || removed != 0 {
		t.Fatalf("Sweep removed %d (%v), want 0", removed, err)
	}
	if len(w.Zones().TXT("_acme-challenge.example.test")) != 1 || len(w.journal(t)) != 1 {
		t.Fatal("the live member's record or journal entry was removed")
	}
}

func TestSweepQuarantinesUnusableJournalEntriesAndGoesOn(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			w := newSolverWorld(t, "example.test")
			ctx := context.Background()
			var store Storage = w.storage
			if encrypted {
				s, err := encrypt.New(encrypt.Config{Storage: w.storage, Keys: [][]byte{bytes.Repeat([]byte{7}, encrypt.KeySize)}})
				if err != nil {
					t.Fatal(err)
				}
				store = s
			}
			cfg := w.config(t, nil)
			cfg.Storage = store
			dead := newTestSolver(t, cfg)
			if err := dead.Present(ctx, challenge("example.test", "tok")); err != nil {
				t.Fatal(err)
			}
			abandon(dead)
			if err := store.Delete(ctx, ownerKey(dead.id)); err != nil {
				t.Fatal(err)
			}

			// Entries that no sweep can use, through the storage the solver
			// sees, and (encrypted only) one tampered with underneath it.
			bad := map[string][]byte{
				journalPrefix + "/0badc0ffee_000000000000000000000000": []byte("not json {"),
				journalPrefix + "/0badc0ffee_111111111111111111111111": []byte(`{"owner":"0badc0ffee","zone":"example.test."}`),
				journalPrefix + "/nounderscore":                        []byte(`{}`),
				journalPrefix + "/0badc0ffee_222222222222222222222222": []byte(`{"owner":"0badc0ffee","zone":"example.test.","name":"_acme-challenge.other.test.","value":"v"}`),
			}
			for k, v := range bad {
				if err := store.Store(ctx, k, v); err != nil {
					t.Fatal(err)
				}
			}
			// A key that names no owner counts once it has settled (a younger
			// one may be a write in progress).
			settled := time.Now().Add(-2 * foreignGrace)
			if err := os.Chtimes(w.storage.Filename(journalPrefix+"/nounderscore"), settled, settled); err != nil {
				t.Fatal(err)
			}
			if encrypted {
				k := journalPrefix + "/0badc0ffee_333333333333333333333333"
				if err := w.storage.Store(ctx, k, []byte("CFE1 tampered ciphertext")); err != nil {
					t.Fatal(err)
				}
				bad[k] = nil
			}

			var logs syncbuf.Buffer
			cfg = w.config(t, nil)
			cfg.Storage = store
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			sweeper := newTestSolver(t, cfg)
			if _, err := sweeper.Sweep(ctx); err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			wait.For(t, 10*time.Second, "the dead member's record and every journal entry to be gone", func() bool {
				return len(w.challengeTXT(t, "example.test")) == 0 && len(w.journal(t)) == 0
			})

			// Each unusable entry is kept under certfleet/quarantine/<time>/<key>
			// beside a reason.json naming it.
			q, err := w.storage.List(ctx, quarantine.Prefix, true)
			if err != nil {
				t.Fatalf("listing the quarantine: %v", err)
			}
			for k := range bad {
				var copied, noted bool
				for _, qk := range q {
					copied = copied || strings.HasSuffix(qk, "/"+k)
					if strings.HasSuffix(qk, "/reason.json") {
						b, err := w.storage.Load(ctx, qk)
						if err != nil {
							t.Fatal(err)
						}
						var n quarantine.Note
						if err := json.Unmarshal(b, &n); err != nil {
							t.Fatalf("reason.json %s: %v", qk, err)
						}
						noted = noted || (n.Name == k && n.Reason != "" && len(n.Keys) == 1 && n.Keys[0] == k && !n.Time.IsZero())
					}
				}
				if !copied || !noted {
					t.Errorf("%s: copied %t, reason noted %t; quarantine holds %q", k, copied, noted, q)
				}
			}
			if out := logs.String(); strings.Count(out, "level=WARN msg=\"moved an unusable DNS-01 journal entry aside") != len(bad) {
				t.Errorf("want %d warnings, one per quarantined entry; logs:\n%s", len(bad), out)
			}

			// The next sweep finds nothing left to trip over.
			before := len(logs.String())
			if _, err := sweeper.Sweep(ctx); err != nil {
				t.Fatalf("second Sweep: %v", err)
			}
			if after := logs.String()[before:]; strings.Contains(after, "level=WARN") {
				t.Errorf("the second sweep warned:\n%s", after)
			}
		})
	}
}

func TestSweepLeavesWritesInProgressAlone(t *testing.T) {
	w := newSolverWorld(t, "example.test")
	ctx := context.Background()
	// What certmagic's FileStorage lists while it writes a value: a
	// temporary file named with digits beside the keys, renamed into place
	// when the write completes.
	inProgress := map[string][]byte{
		journalPrefix + "/3168002568": []byte(`{"owner":"`),
		ownersPrefix + "/2749163015":  nil,
	}
	for k, v := range inProgress {
		if err := w.storage.Store(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	var logs syncbuf.Buffer
	cfg := w.config(t, nil)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	sweeper := newTestSolver(t, cfg)
	if _, err := sweeper.Sweep(ctx); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	for k, v := range inProgress {
		if got, err := w.storage.Load(ctx, k); err != nil || !bytes.Equal(got, v) {
			t.Errorf("%s after the sweep: %q, %v; want it untouched", k, got, err)
		}
	}
	if q, _ := w.storage.List(ctx, quarantine.Prefix, true); len(q) != 0 {
		t.Errorf("quarantined: %q", q)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the sweep warned:\n%s", logs.String())
	}
}
