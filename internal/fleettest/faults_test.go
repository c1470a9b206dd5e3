package fleettest_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/backendtest"
	"github.com/certfleet/certfleet/internal/fleettest"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/storage/storagetest"
)

// lockTTL is the storage lock TTL in the fault tests, short so that a dead
// holder's locks expire quickly.
const lockTTL = 2 * time.Second

// solverLease is the members' DNS-01 solver lease in the kill test: a dead
// member's records are swept within about twice this.
const solverLease = 2 * time.Second

// sweepTimeout bounds the wait for a dead member's challenge records to be
// removed: its solver lease must lapse, then a survivor sweeps.
const sweepTimeout = time.Minute

// withLockTTL returns b's storage URL with its lock TTL set to ttl.
func withLockTTL(t *testing.T, b backendtest.Backend, ttl time.Duration) string {
	t.Helper()
	param := map[string]string{"file": "lock_ttl", "postgres": "certfleet_lock_ttl", "redis": "lock_ttl"}[b.Name]
	raw := b.URL
	if b.Name == "file" {
		raw = (&url.URL{Scheme: "file", Path: b.URL}).String()
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(param, ttl.String())
	u.RawQuery = q.Encode()
	return u.String()
}

// TestFleetCompletesCertificateAfterLockHolderKilled kills (SIGKILL) the
// member that holds a name's issuance lock while its challenge record is in
// the zone, on each storage backend: another member must obtain the
// certificate, every surviving member serve it, and the dead member's record
// must leave the zone. The backends run one after the other up to the kill
// and completion, then their sweeps are awaited together: each takes the
// dead member's solver lease to lapse.
func TestFleetCompletesCertificateAfterLockHolderKilled(t *testing.T) {
	t.Parallel()
	var victims []victim
	for _, b := range backendtest.All(t) {
		victims = append(victims, killLockHolder(t, b))
	}

	// A survivor sweeps the record each dead member left.
	deadline := time.Now().Add(sweepTimeout)
	for swept := 0; swept < len(victims); {
		swept = 0
		for i := range victims {
			v := &victims[i]
			if v.swept.IsZero() && !slices.Contains(v.w.Zones().TXT(v.held.Name), v.held.Value) {
				v.swept = time.Now()
				t.Logf("%s: the killed member's challenge record was removed %v after it died",
					v.backend, v.swept.Sub(v.killed).Round(time.Millisecond))
				if left := v.w.Zones().TXT(v.held.Name); len(left) != 0 {
					t.Errorf("%s: challenge records left in the zone: %v", v.backend, left)
				}
			}
			if !v.swept.IsZero() {
				swept++
			}
		}
		if swept < len(victims) {
			if time.Now().After(deadline) {
				for _, v := range victims {
					if v.swept.IsZero() {
						t.Errorf("%s: the killed member's challenge record %s %q is still in the zone %v after it died",
							v.backend, v.held.Name, v.held.Value, sweepTimeout)
					}
				}
				return
			}
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
}

// victim is a member killed while it held a challenge record in the zone.
type victim struct {
	backend string
	w       *testacme.World
	held    fleettest.Message // its record
	killed  time.Time
	swept   time.Time // when its record was seen gone
}

// killLockHolder runs the kill scenario on backend b up to the completion of
// the certificate by a survivor. The survivors run until the test ends.
func killLockHolder(t *testing.T, b backendtest.Backend) victim {
	t.Helper()
	env := fleettest.NewEnv(t, testacme.Options{})
	w := env.World
	const name = "kill.example.test"
	spec := env.Spec(withLockTTL(t, b, lockTTL), name)
	spec.SolverLease = solverLease

	// Member 0 starts alone, takes the issuance lock, writes its challenge
	// record and hangs there.
	holder := spec
	holder.HoldFirstAppend = true
	dead := env.StartMember(t, 0, holder)
	fleettest.StartTogether(t, dead)
	held := dead.Await(t, eventTimeout, kind(fleettest.KindHeld))
	if !slices.Contains(w.Zones().TXT(held.Name), held.Value) {
		t.Fatalf("%s: the held challenge record %s is not in the zone: %v", b.Name, held.Name, w.Zones().TXT(held.Name))
	}

	// Two more members start and wait on the lock; the holder dies.
	ms := []*fleettest.Member{env.StartMember(t, 1, spec), env.StartMember(t, 2, spec)}
	fleettest.StartTogether(t, ms...)
	dead.Kill(t)
	killed := time.Now()
	for _, m := range ms {
		m.AwaitReady(t, startTimeout)
	}

	by := obtainedBy(ms)
	if len(by[name]) != 1 {
		t.Fatalf("%s: %s obtained by members %v after the holder died, want exactly one", b.Name, name, by[name])
	}
	winner := ms[by[name][0]-1]
	obtained, _ := winner.Find(kind(fleettest.KindObtained))
	t.Logf("%s: member %d obtained the certificate %v after the lock holder was killed (lock TTL %v); CA counts %+v",
		b.Name, winner.ID, obtained.At().Sub(killed).Round(time.Millisecond), lockTTL, w.Counts())
	if got := w.Counts().Certificates; got != 1 {
		t.Errorf("%s: CA issued %d certificates, want 1", b.Name, got)
	}
	for _, m := range ms {
		got, err := fleettest.ServedSerial(m, name, w.Roots())
		if err != nil {
			t.Fatalf("%s: member %d: %v", b.Name, m.ID, err)
		}
		if got != obtained.Serial {
			t.Errorf("%s: member %d serves serial %s, want %s", b.Name, m.ID, got, obtained.Serial)
		}
	}
	return victim{backend: b.Name, w: w, held: held, killed: killed}
}

// outage is how long storage is unreachable in TestFleetServesThroughStorageOutage.
const outage = 10 * time.Second

// TestFleetServesThroughStorageOutage cuts the connection of every member to
// the shared storage for 10 s while one of them renews a certificate: not one
// handshake may fail meanwhile, and the renewal must complete and reach every
// member once storage is back.
func TestFleetServesThroughStorageOutage(t *testing.T) {
	t.Parallel()
	var backends []backendtest.Backend
	if b, ok := backendtest.Postgres(t); ok {
		backends = append(backends, b)
	}
	if b, ok := backendtest.Redis(t); ok {
		backends = append(backends, b)
	}
	if len(backends) == 0 {
		t.Skip("no network storage to cut: set CERTFLEET_TEST_POSTGRES or CERTFLEET_TEST_REDIS")
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel() // most of the time goes to the outage itself
			env := fleettest.NewEnv(t, testacme.Options{})
			w := env.World
			u, err := url.Parse(withLockTTL(t, b, lockTTL))
			if err != nil {
				t.Fatal(err)
			}
			proxy := storagetest.NewProxy(t, u.Host)
			u.Host = proxy.Addr()
			names := []string{"out.example.test", "*.out.example.test", "other.example.test"}
			spec := env.Spec(u.String(), names...)
			spec.WatchServed = true
			ms := env.StartMembers(t, 3, spec)
			fleettest.StartTogether(t, ms...)
			for _, m := range ms {
				m.AwaitReady(t, startTimeout)
			}
			before := obtainedSerials(ms)

			hs := startHandshakes(t, ms, names, env)

			// Member 0 renews; once its challenge record is written, storage
			// goes away for the outage.
			name := names[0]
			ms[0].Send(t, "hold")
			ms[0].Send(t, "renew "+name)
			ms[0].Await(t, eventTimeout, kind(fleettest.KindHeld))
			proxy.Cut()
			cut := time.Now()
			ms[0].Send(t, "release")
			time.Sleep(time.Until(cut.Add(outage))) // the outage itself, not a wait for an event
			proxy.Restore()
			restored := time.Now()
			okDuring, failedDuring := hs.counts()

			done := ms[0].Await(t, eventTimeout, kind(fleettest.KindRenewDone))
			if done.Serial == before[name] {
				t.Fatalf("renewal of %s kept serial %s", name, done.Serial)
			}
			for _, m := range ms[1:] {
				m.Await(t, eventTimeout, func(msg fleettest.Message) bool {
					return msg.Kind == fleettest.KindServing && msg.Name == name && msg.Serial == done.Serial
				})
			}
			ok, failed := hs.stop()
			var attempts []string
			for _, msg := range ms[0].Messages() {
				if msg.Kind == fleettest.KindRenewFailed {
					attempts = append(attempts, msg.Err)
				}
			}
			t.Logf("%s: %d handshakes during the %v outage, %d in all, %d failed; renewal done %v after storage came back, after %d failed attempts %q; CA counts %+v",
				b.Name, okDuring+failedDuring, outage, ok+failed, failed, done.At().Sub(restored).Round(time.Millisecond), len(attempts), attempts, w.Counts())
			if failed != 0 {
				t.Errorf("%d of %d handshakes failed; first errors: %v", failed, ok+failed, hs.errors())
			}
			if okDuring == 0 {
				t.Error("no handshake completed during the outage")
			}
		})
	}
}

// handshakes runs verified TLS handshakes against members, round robin over
// members and names, counting successes and failures, until stop.
type handshakes struct {
	ok, failed atomic.Int64
	stopc      chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []string
}

func startHandshakes(t *testing.T, ms []*fleettest.Member, names []string, env *fleettest.Env) *handshakes {
	h := &handshakes{stopc: make(chan struct{})}
	for g := range 2 {
		h.wg.Go(func() {
			for i := g; ; i++ {
				select {
				case <-h.stopc:
					return
				case <-time.After(5 * time.Millisecond): // pace the load; the machine has 2 cores
				}
				m := ms[i%len(ms)]
				name := names[(i/len(ms))%len(names)]
				if _, err := fleettest.Handshake(m.Addr(), fleettest.SNI(name), env.World.Roots()); err != nil {
					h.failed.Add(1)
					h.mu.Lock()
					if len(h.errs) < 5 {
						h.errs = append(h.errs, fmt.Sprintf("member %d: %v", m.ID, err))
					}
					h.mu.Unlock()
				} else {
					h.ok.Add(1)
				}
			}
		})
	}
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *handshakes) counts() (ok, failed int64) { return h.ok.Load(), h.failed.Load() }

func (h *handshakes) stop() (ok, failed int64) {
	select {
	case <-h.stopc:
	default:
		close(h.stopc)
	}
	h.wg.Wait()
	return h.counts()
}

func (h *handshakes) errors() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.errs, "; ")
}
