package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certfleet/certfleet/internal/wait"
)

// next returns the next key from ch, failing the test if none comes soon.
func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case k, ok := <-ch:
		if !ok {
			t.Fatal("Watch channel closed")
		}
		return k
	case <-time.After(30 * time.Second):
		t.Fatal("no change reported within 30s")
		return ""
	}
}

func TestWatchReportsEveryKeyOfAPrefixDelete(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "watchdel")
	watcher, writer := newTestStorage(t, cs, ns, nil), newTestStorage(t, cs, ns, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := watcher.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"d/1", "d/2/3", "dx/4"} {
		if err := writer.Store(testCtx(t), k, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if got := next(t, ch); got != k {
			t.Fatalf("Watch reported %q after Store(%q)", got, k)
		}
	}
	if err := writer.Delete(testCtx(t), "d"); err != nil {
		t.Fatal(err)
	}
	if err := writer.Store(testCtx(t), "end", []byte("v")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := next(t, ch); k != "end"; k = next(t, ch) {
		seen[k] = true
	}
	if !seen["d/1"] || !seen["d/2/3"] || seen["dx/4"] || len(seen) != 2 {
		t.Errorf("Delete(\"d\") reported %v, want exactly d/1 and d/2/3", seen)
	}
}

func TestWatchSaysResyncAfterTheListenerReconnects(t *testing.T) {
	cs, ns := testConnString(t), uniqueNamespace(t, "resync")
	app := "certfleet-test-" + ns // tells the watcher's connections apart in pg_stat_activity
	watcher, writer := newTestStorage(t, withParam(cs, "application_name", app), ns, nil), newTestStorage(t, cs, ns, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := watcher.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin := adminConn(t)
	old := listenerPID(t, admin, app)
	var killed bool
	if err := admin.QueryRow(testCtx(t), "SELECT pg_terminate_backend($1)", int64(old)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminating the listener's backend %d: %v, %v", old, killed, err)
	}
	if got := next(t, ch); got != "" {
		t.Fatalf("Watch reported %q after the listener lost its connection, want \"\" (resync)", got)
	}
	wait.For(t, 30*time.Second, "a new listening connection", func() bool {
		p := listenerPID(t, admin, app)
		return p != 0 && p != old
	})
	if err := writer.Store(testCtx(t), "after", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); got != "after" {
		t.Errorf("Watch reported %q after reconnecting, want after", got)
	}
}

// listenerPID returns the server process of the connection with
// application_name app that listens for changes (its last statement was a
// LISTEN), or 0 if there is none.
func listenerPID(t testing.TB, admin *pgx.Conn, app string) int64 {
	t.Helper()
	var pid int64
	err := admin.QueryRow(testCtx(t),
		"SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %' ORDER BY backend_start DESC LIMIT 1", app).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestSlowWatcherGetsResyncInsteadOfUnboundedQueue(t *testing.T) {
	w := &watcher{signal: make(chan struct{}, 1)}
	for i := range maxPending + 10 {
		w.push(string(rune('a' + i%26)))
	}
	var got []string
	for k, ok := w.next(); ok; k, ok = w.next() {
		got = append(got, k)
	}
	if len(got) == 0 || got[0] != "" || len(got) > 11 {
		t.Errorf("after %d keys for a stalled watcher, it gets %d keys starting %q; want a resync (\"\") first and only the keys after it", maxPending+10, len(got), got[:min(1, len(got))])
	}
}
