package tlsauto_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/syncbuf"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/storage/storagetest"
	"github.com/certfleet/certfleet/tlsauto"
)

// ticketTimeout bounds the waits of the session ticket tests.
const ticketTimeout = time.Minute

// fixedSession is a client session cache that offers one session, the
// first one it is given, to every connection: a test can then present the
// same ticket again and again.
type fixedSession struct {
	mu sync.Mutex
	ss *tls.ClientSessionState
}

func (c *fixedSession) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ss, c.ss != nil
}

func (c *fixedSession) Put(_ string, ss *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ss == nil && ss != nil {
		c.ss = ss
	}
}

func (c *fixedSession) has() bool { _, ok := c.Get(""); return ok }

// ticketFleet starts n Managers for name sharing store, each served on
// loopback, and returns them with their addresses.
func ticketFleet(t *testing.T, w *testacme.World, n int, name string, store func(i int) storage.Storage, tweak func(*tlsauto.Config)) ([]*tlsauto.Manager, []string) {
	t.Helper()
	var ms []*tlsauto.Manager
	var addrs []string
	for i := range n {
		cfg := testConfig(t, w, name)
		cfg.Storage = store(i)
		cfg.SyncInterval = 200 * time.Millisecond
		if tweak != nil {
			tweak(&cfg)
		}
		m := startManager(t, cfg)
		ms = append(ms, m)
		addrs = append(addrs, serve(t, m))
	}
	return ms, addrs
}

// sameKeys reports whether every Manager has installed keys and the same
// newest key.
func sameKeys(ms []*tlsauto.Manager) bool {
	first := tlsauto.TicketKeyIDs(ms[0])
	if len(first) == 0 {
		return false
	}
	for _, m := range ms[1:] {
		ids := tlsauto.TicketKeyIDs(m)
		if len(ids) == 0 || !ids[0].Equal(first[0]) {
			return false
		}
	}
	return true
}

func hasKey(m *tlsauto.Manager, id time.Time) bool {
	for _, k := range tlsauto.TicketKeyIDs(m) {
		if k.Equal(id) {
			return true
		}
	}
	return false
}

// TestSessionResumesAtAnotherManagerOnlyWithSharedTickets: a session begun
// at one Manager resumes at another sharing its storage, through
// TLSConfig, a clone of it and a caller's own tls.Config with
// InstallSessionTickets, in TLS 1.3 and 1.2; with TicketsLocal it does not,
// and with TicketsOff not even at the same Manager.
func TestSessionResumesAtAnotherManagerOnlyWithSharedTickets(t *testing.T) {
	t.Parallel()
	w := testacme.Start(t, testacme.Options{})
	const name = "resume.example.test"
	store := fileStore(t, t.TempDir())
	shared, addrs := ticketFleet(t, w, 2, name, func(int) storage.Storage { return store }, nil)
	wait.For(t, ticketTimeout, "both Managers to install the same keys", func() bool { return sameKeys(shared) })

	// A caller's own tls.Config, and a clone of TLSConfig's.
	own := &tls.Config{GetCertificate: shared[1].GetCertificate}
	shared[1].InstallSessionTickets(own)
	addrs = append(addrs, serveConfig(t, own), serveConfig(t, shared[1].TLSConfig().Clone()))

	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for i := 1; i < len(addrs); i++ {
			cache := &fixedSession{}
			if resumed, err := fleettest.Resume(addrs[0], name, w.Roots(), v, cache); err != nil || resumed || !cache.has() {
				t.Fatalf("%s: first connection: resumed %v, ticket %v, error %v", tls.VersionName(v), resumed, cache.has(), err)
			}
			resumed, err := fleettest.Resume(addrs[i], name, w.Roots(), v, cache)
			if err != nil || !resumed {
				t.Errorf("%s: session from server 0 at server %d: resumed %v, error %v; want resumed", tls.VersionName(v), i, resumed, err)
			}
		}
	}

	for _, mode := range []tlsauto.TicketMode{tlsauto.TicketsLocal, tlsauto.TicketsOff} {
		store := fileStore(t, t.TempDir())
		_, addrs := ticketFleet(t, w, 2, name, func(int) storage.Storage { return store }, func(c *tlsauto.Config) { c.SessionTickets = mode })
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			cache := &fixedSession{}
			if _, err := fleettest.Resume(addrs[0], name, w.Roots(), v, cache); err != nil {
				t.Fatal(err)
			}
			if mode == tlsauto.TicketsOff {
				if cache.has() {
					t.Errorf("%s %s: the server issued a ticket", mode, tls.VersionName(v))
				}
				continue
			}
			if resumed, err := fleettest.Resume(addrs[0], name, w.Roots(), v, cache); err != nil || !resumed {
				t.Errorf("%s %s: session at the same Manager: resumed %v, error %v; want resumed", mode, tls.VersionName(v), resumed, err)
			}
			if resumed, err := fleettest.Resume(addrs[1], name, w.Roots(), v, cache); err != nil || resumed {
				t.Errorf("%s %s: session at another Manager: resumed %v, error %v; want a full handshake", mode, tls.VersionName(v), resumed, err)
			}
		}
	}
}

// serveConfig runs a TLS server with cfg on loopback until the test ends.
func serveConfig(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		acceptHandshakes(ln)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestTicketsResumeAfterRotationUntilTheirKeyExpires: a ticket keeps
// resuming at another member after the fleet has rotated to a newer key,
// for as long as the key that encrypted it is within its lifetime; once the
// key is dropped, the ticket makes a full handshake. Rotation 1 s, lifetime
// 3 s.
func TestTicketsResumeAfterRotationUntilTheirKeyExpires(t *testing.T) {
	t.Parallel()
	w := testacme.Start(t, testacme.Options{})
	const name = "rotate.example.test"
	store := fileStore(t, t.TempDir())
	ms, addrs := ticketFleet(t, w, 2, name, func(int) storage.Storage { return store }, func(c *tlsauto.Config) {
		c.SessionTicketRotation, c.SessionTicketLifetime = time.Second, 3*time.Second
	})
	a, b := ms[0], ms[1]

	var afterRotation, afterExpiry bool
	deadline := time.Now().Add(ticketTimeout)
	for !afterRotation || !afterExpiry {
		if time.Now().After(deadline) {
			t.Fatalf("within %v: resumed after a rotation %v, refused after expiry %v", ticketTimeout, afterRotation, afterExpiry)
		}
		// A ticket from A, and the key that encrypted it.
		ids := tlsauto.TicketKeyIDs(a)
		if len(ids) == 0 {
			continue
		}
		key := ids[0]
		cache := &fixedSession{}
		if _, err := fleettest.Resume(addrs[0], name, w.Roots(), tls.VersionTLS13, cache); err != nil {
			t.Fatal(err)
		}
		if now := tlsauto.TicketKeyIDs(a); len(now) == 0 || !now[0].Equal(key) || !cache.has() {
			continue // A rotated meanwhile: which key encrypted it is unknown
		}
		// Present it to B until B no longer held its key before a try.
		for {
			rotated := !tlsauto.TicketKeyIDs(b)[0].Equal(key)
			before := hasKey(b, key)
			resumed, err := fleettest.Resume(addrs[1], name, w.Roots(), tls.VersionTLS13, cache)
			if err != nil {
				t.Fatal(err)
			}
			after := hasKey(b, key)
			switch {
			case before && after && !resumed:
				t.Fatalf("B holds the key of the ticket (made %v; B's keys %v) but did not resume it", key, tlsauto.TicketKeyIDs(b))
			case before && after && rotated:
				afterRotation = true
			case !before && !after && resumed:
				t.Fatalf("B dropped the key of the ticket (made %v; B's keys %v) but resumed it", key, tlsauto.TicketKeyIDs(b))
			case !before && !after:
				afterExpiry = true
			}
			if !before {
				break
			}
		}
	}
}

// TestOneKeyPerRotationWhenMembersRotateTogether: three members due to
// rotate at the same instants make one key per period between them.
func TestOneKeyPerRotationWhenMembersRotateTogether(t *testing.T) {
	t.Parallel()
	w := testacme.Start(t, testacme.Options{})
	dir := t.TempDir()
	const rotation = time.Second
	ms, _ := ticketFleet(t, w, 3, "together.example.test", func(int) storage.Storage { return fileStore(t, dir) }, func(c *tlsauto.Config) {
		c.SessionTicketRotation, c.SessionTicketLifetime = rotation, 16*rotation
	})
	store := fileStore(t, dir)
	var made []time.Time
	wait.For(t, ticketTimeout, "6 keys in storage", func() bool {
		var err error
		_, made, err = tlsauto.StoredTicketKeys(context.Background(), store)
		return err == nil && len(made) >= 6
	})
	for i := 1; i < len(made); i++ {
		if gap := made[i-1].Sub(made[i]); gap < rotation {
			t.Errorf("keys made %v apart (%v, %v), want at least the rotation, %v", gap, made[i], made[i-1], rotation)
		}
	}
	wait.For(t, ticketTimeout, "every member to install the newest key", func() bool { return sameKeys(ms) })
}

// TestTicketsKeepResumingThroughStorageOutageAndConverge cuts two members
// off their PostgreSQL storage while a rotation falls due: both keep
// serving and resuming each other's sessions with the keys they have, and
// once storage is back they agree on a new key.
func TestTicketsKeepResumingThroughStorageOutageAndConverge(t *testing.T) {
	t.Parallel()
	b, ok := backendtest.Postgres(t)
	if !ok {
		t.Skip("no PostgreSQL to cut: set " + backendtest.EnvPostgres)
	}
	w := testacme.Start(t, testacme.Options{})
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := storagetest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("certfleet_lock_ttl", "2s")
	u.RawQuery = q.Encode()
	const name = "outage.example.test"
	logs := []*syncbuf.Buffer{{}, {}}
	n := 0
	ms, addrs := ticketFleet(t, w, 2, name, func(int) storage.Storage { return openStorage(t, u.String()) }, func(c *tlsauto.Config) {
		c.SessionTicketRotation, c.SessionTicketLifetime = 2*time.Second, 6*time.Second
		c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs[n], testWriter{t}), nil))
		n++
	})

	// Cut storage right after both members took the same key, so that
	// neither can have moved on alone.
	var cut time.Time
	for attempt := 0; ; attempt++ {
		wait.For(t, ticketTimeout, "both members to install the same keys", func() bool { return sameKeys(ms) })
		proxy.Cut()
		cut = time.Now()
		if sameKeys(ms) {
			break
		}
		if attempt == 3 {
			t.Fatal("the members' keys differ every time storage is cut")
		}
		proxy.Restore()
	}
	frozen := tlsauto.TicketKeyIDs(ms[0])[0]
	marks := []int{len(logs[0].String()), len(logs[1].String())}

	// Past the next rotation, with storage still out of reach: sessions
	// from each member resume at the other.
	for i, l := range logs {
		wait.For(t, ticketTimeout, fmt.Sprintf("member %d to fail a rotation", i), func() bool {
			return time.Since(frozen) > 2*time.Second && strings.Contains(l.String()[marks[i]:], "storage not reachable")
		})
	}
	for i := range ms {
		for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			cache := &fixedSession{}
			if _, err := fleettest.Resume(addrs[i], name, w.Roots(), v, cache); err != nil {
				t.Fatalf("member %d during the outage: %v", i, err)
			}
			if resumed, err := fleettest.Resume(addrs[1-i], name, w.Roots(), v, cache); err != nil || !resumed {
				t.Errorf("%s during the outage: session from member %d at member %d: resumed %v, error %v", tls.VersionName(v), i, 1-i, resumed, err)
			}
		}
	}
	if id := tlsauto.TicketKeyIDs(ms[0])[0]; !id.Equal(frozen) || !sameKeys(ms) {
		t.Errorf("keys changed while storage was out of reach")
	}

	proxy.Restore()
	restored := time.Now()
	wait.For(t, ticketTimeout, "both members to agree on a key made after the outage", func() bool {
		return sameKeys(ms) && tlsauto.TicketKeyIDs(ms[0])[0].After(cut)
	})
	t.Logf("storage out of reach for %v; converged on a new key %v after it came back",
		restored.Sub(cut).Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))
	cache := &fixedSession{}
	if _, err := fleettest.Resume(addrs[0], name, w.Roots(), tls.VersionTLS13, cache); err != nil {
		t.Fatal(err)
	}
	if resumed, err := fleettest.Resume(addrs[1], name, w.Roots(), tls.VersionTLS13, cache); err != nil || !resumed {
		t.Errorf("after the outage: resumed %v, error %v", resumed, err)
	}
}

// TestSessionTicketKeysNeverAppearInLogs runs rotations with every log
// level on and looks for each stored key, in the encodings a log could
// carry it, in the logs.
func TestSessionTicketKeysNeverAppearInLogs(t *testing.T) {
	t.Parallel()
	w := testacme.Start(t, testacme.Options{})
	store := fileStore(t, t.TempDir())
	var logs syncbuf.Buffer
	_, _ = ticketFleet(t, w, 2, "secret.example.test", func(int) storage.Storage { return store }, func(c *tlsauto.Config) {
		c.SessionTicketRotation, c.SessionTicketLifetime = time.Second, 2*time.Second
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var seen [][32]byte
	wait.For(t, ticketTimeout, "4 rotations", func() bool {
		keys, _, err := tlsauto.StoredTicketKeys(context.Background(), store)
		if err == nil && (len(seen) == 0 || seen[len(seen)-1] != keys[0]) {
			seen = append(seen, keys[0])
		}
		return len(seen) >= 4
	})
	text := logs.String()
	if !strings.Contains(text, "session ticket keys") {
		t.Fatal("no session ticket log lines: the check below would prove nothing")
	}
	for _, k := range seen {
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(k[:]), base64.RawURLEncoding.EncodeToString(k[:]),
			hex.EncodeToString(k[:]), string(k[:]), fmt.Sprint(k[:]),
		} {
			if strings.Contains(text, enc) {
				t.Fatalf("a session ticket key appears in the logs")
			}
		}
	}
}
