package fleettest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libdns/libdns"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	_ "github.com/certfleet/certfleet/dnsprovider/route53" // members reach the Route 53 fake
	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/all" // members open any backend by URL
	"github.com/certfleet/certfleet/tlsauto"
)

// envSpec is the environment variable that carries a member's MemberSpec,
// as JSON, and marks the process as a member.
const envSpec = "CERTFLEET_FLEETTEST_MEMBER"

// MemberSpec is what a member process runs: the settings of its
// tlsauto.Manager and how it reports.
type MemberSpec struct {
	Domains     []string `json:"domains"`
	Email       string   `json:"email"`
	CA          string   `json:"ca"`
	CARootsFile string   `json:"ca_roots_file"` // PEM file trusted for the CA's HTTPS
	Storage     string   `json:"storage"`       // a URL for storage.Open
	DNSProvider string   `json:"dns_provider"`  // a name for dnsprovider.FromEnv
	Resolvers   []string `json:"resolvers"`

	PropagationCheck     string        `json:"propagation_check"` // dns01.Propagation
	PropagationTimeout   time.Duration `json:"propagation_timeout"`
	DNSPort              int           `json:"dns_port"` // of the zones' authoritative nameservers
	RenewalCheckInterval time.Duration `json:"renewal_check_interval"`
	RenewalWindowRatio   float64       `json:"renewal_window_ratio"`
	SyncInterval         time.Duration `json:"sync_interval"`
	SolverLease          time.Duration `json:"solver_lease"`

	// HoldFirstAppend makes the member's first DNS write hang after it was
	// written, as "hold" does for the next one.
	HoldFirstAppend bool `json:"hold_first_append"`

	// WatchServed makes the member report (KindServing) every change of the
	// certificate it serves for each name, checked every millisecond.
	WatchServed bool `json:"watch_served"`

	// ShareNames is tlsauto.Config.ShareNames: names managed at one member
	// are managed by all.
	ShareNames bool `json:"share_names"`

	// OrderBudget and OrderBudgetWindow are tlsauto.Config's: the orders
	// the fleet places with the CA in any window.
	OrderBudget       int           `json:"order_budget"`
	OrderBudgetWindow time.Duration `json:"order_budget_window"`
	// SessionTickets, SessionTicketRotation and SessionTicketLifetime are
	// tlsauto.Config's: whose keys encrypt session tickets, and how they
	// rotate.
	SessionTickets        tlsauto.TicketMode `json:"session_tickets"`
	SessionTicketRotation time.Duration      `json:"session_ticket_rotation"`
	SessionTicketLifetime time.Duration      `json:"session_ticket_lifetime"`

	// LogLevel is the level of the member's logs on standard error.
	LogLevel slog.Level `json:"log_level"`
}

// Message kinds a member reports.
const (
	KindCreated     = "created"      // the Manager exists and serves TLS on Addr; waiting for "start"
	KindReady       = "ready"        // Start returned nil: every name has a certificate
	KindStartFailed = "start-failed" // Start returned Err
	KindObtained    = "obtained"     // this member obtained Name's certificate (Serial)
	KindRenewed     = "renewed"      // this member renewed Name's certificate (Serial)
	KindFailed      = "failed"       // obtaining or renewing Name failed (Err)
	KindServing     = "serving"      // the member now serves Serial for Name (WatchServed)
	KindHeld        = "held"         // a DNS write was made and is held (Name: record name, Value)
	KindRenewDone   = "renew-done"   // a "renew" command succeeded: Serial is served
	KindRenewFailed = "renew-failed" // one attempt of a "renew" command failed (Err); it retries
	KindManaged     = "managed"      // a "manage" command returned: Name is served (or Err)
	KindUnmanaged   = "unmanaged"    // an "unmanage" command returned (Err if it failed)
	KindGone        = "gone"         // the member no longer serves Name (WatchServed)
	KindError       = "error"        // the member could not run (Err)
)

// Message is one report of a member, a JSON line on its standard output.
type Message struct {
	Kind   string `json:"kind"`
	Name   string `json:"name,omitempty"`
	Serial string `json:"serial,omitempty"`
	Addr   string `json:"addr,omitempty"`
	Value  string `json:"value,omitempty"`
	Err    string `json:"err,omitempty"`
	Time   int64  `json:"t"` // wall clock, Unix nanoseconds: comparable across members on one host
}

// At returns the message's time.
func (m Message) At() time.Time { return time.Unix(0, m.Time) }

// IsMember reports whether this process was started as a fleet member.
func IsMember() bool { return os.Getenv(envSpec) != "" }

// RunMember runs this process as a fleet member and returns its exit code:
// 0 once it was told to exit (or its standard input closed), 1 if it could
// not run. Commands, one per line on standard input:
//
//	start       call Manager.Start (once); reports ready or start-failed
//	renew NAME  call Manager.Renew until it succeeds, 1 s apart; reports
//	            renew-failed for each failed attempt, then renew-done
//	manage NAME   call Manager.Manage; reports managed
//	unmanage NAME call Manager.Unmanage; reports unmanaged
//	hold        make the next DNS write hang once written (reports held)
//	release     let a held DNS write return
//	exit        close the Manager and exit
func RunMember() int {
	r := &member{out: json.NewEncoder(os.Stdout), release: make(chan struct{}, 1)}
	if err := r.run(os.Stdin); err != nil {
		r.say(Message{Kind: KindError, Err: err.Error()})
		fmt.Fprintln(os.Stderr, "fleettest member:", err)
		return 1
	}
	return 0
}

// member is the state of a member process.
type member struct {
	mu  sync.Mutex // guards out
	out *json.Encoder

	spec    MemberSpec
	m       *tlsauto.Manager
	release chan struct{} // a "release" command for a held DNS write
	serials sync.Map      // name → serial last reported served
}

func (r *member) say(msg Message) {
	if msg.Time == 0 {
		msg.Time = time.Now().UnixNano()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.out.Encode(msg) // the parent reads until the member exits
}

func (r *member) run(stdin io.Reader) error {
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &r.spec); err != nil {
		return fmt.Errorf("%s: %w", envSpec, err)
	}
	spec := r.spec
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: spec.LogLevel}))

	dns, err := dnsprovider.FromEnv(spec.DNSProvider)
	if err != nil {
		return err
	}
	hold := &holdProvider{inner: dns, release: r.release, say: r.say}
	hold.armed.Store(spec.HoldFirstAppend)
	store, err := storage.Open(ctx, spec.Storage)
	if err != nil {
		return err
	}
	if c, ok := store.(io.Closer); ok {
		defer c.Close()
	}
	roots, err := loadRoots(spec.CARootsFile)
	if err != nil {
		return err
	}
	r.m, err = tlsauto.New(tlsauto.Config{
		Domains:               spec.Domains,
		Email:                 spec.Email,
		CA:                    spec.CA,
		CARoots:               roots,
		DNS:                   hold,
		Storage:               store,
		Resolvers:             spec.Resolvers,
		PropagationCheck:      dns01.Propagation(spec.PropagationCheck),
		PropagationTimeout:    spec.PropagationTimeout,
		DNSPort:               spec.DNSPort,
		Logger:                logger,
		RenewalCheckInterval:  spec.RenewalCheckInterval,
		RenewalWindowRatio:    spec.RenewalWindowRatio,
		SyncInterval:          spec.SyncInterval,
		SolverLease:           spec.SolverLease,
		ShareNames:            spec.ShareNames,
		SessionTickets:        spec.SessionTickets,
		SessionTicketRotation: spec.SessionTicketRotation,
		SessionTicketLifetime: spec.SessionTicketLifetime,
		OrderBudget:           spec.OrderBudget,
		OrderBudgetWindow:     spec.OrderBudgetWindow,
		OnEvent:               r.onEvent,
	})
	if err != nil {
		return err
	}
	defer r.m.Close()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.m.TLSConfig())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer func() { // before the Manager closes
		cancel()
		ln.Close()
		wg.Wait()
	}()
	wg.Go(func() { serveHandshakes(ln) })
	r.say(Message{Kind: KindCreated, Addr: ln.Addr().String()})

	started := false
	lines := bufio.NewScanner(stdin)
	for lines.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(lines.Text()), " ")
		switch cmd {
		case "start":
			if started {
				continue
			}
			started = true
			wg.Go(func() { r.start(ctx) })
		case "renew":
			wg.Go(func() { r.renew(ctx, arg) })
		case "manage":
			wg.Go(func() {
				msg := Message{Kind: KindManaged, Name: arg}
				if err := r.m.Manage(ctx, arg); err != nil {
					msg.Err = err.Error()
				}
				r.say(msg)
			})
		case "unmanage":
			wg.Go(func() {
				msg := Message{Kind: KindUnmanaged, Name: arg}
				if err := r.m.Unmanage(ctx, arg); err != nil {
					msg.Err = err.Error()
				}
				r.say(msg)
			})
		case "hold":
			hold.armed.Store(true)
		case "release":
			select {
			case r.release <- struct{}{}:
			default:
			}
		case "exit":
			return nil
		default:
			return fmt.Errorf("unknown command %q", lines.Text())
		}
	}
	return nil // standard input closed: the parent is done or gone
}

// start runs Manager.Start and then, if asked, watches what is served.
func (r *member) start(ctx context.Context) {
	if err := r.m.Start(ctx); err != nil {
		r.say(Message{Kind: KindStartFailed, Err: err.Error()})
		return
	}
	for _, name := range r.spec.Domains {
		r.reportServing(name)
	}
	r.say(Message{Kind: KindReady})
	if !r.spec.WatchServed {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, name := range r.m.Domains() {
				r.reportServing(name)
			}
			r.serials.Range(func(k, _ any) bool {
				if name := k.(string); r.servedSerial(name) == "" {
					r.serials.Delete(name)
					r.say(Message{Kind: KindGone, Name: name})
				}
				return true
			})
		}
	}
}

// reportServing reports the certificate served for name if it changed.
func (r *member) reportServing(name string) {
	serial := r.servedSerial(name)
	if serial == "" {
		return
	}
	if old, ok := r.serials.Swap(name, serial); ok && old == serial {
		return
	}
	r.say(Message{Kind: KindServing, Name: name, Serial: serial})
}

// servedSerial returns the serial number of the certificate served for a
// managed name, or "" if there is none.
func (r *member) servedSerial(name string) string {
	c, err := r.m.GetCertificate(&tls.ClientHelloInfo{ServerName: SNI(name)})
	if err != nil || c.Leaf == nil {
		return ""
	}
	return c.Leaf.SerialNumber.Text(16)
}

// renew renews name until it succeeds or the member exits.
func (r *member) renew(ctx context.Context, name string) {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Minute)
		err := r.m.Renew(attempt, name)
		cancel()
		if err == nil {
			r.say(Message{Kind: KindRenewDone, Name: name, Serial: r.servedSerial(name)})
			return
		}
		r.say(Message{Kind: KindRenewFailed, Name: name, Err: err.Error()})
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second): // pace the retries
		}
	}
}

func (r *member) onEvent(e tlsauto.Event) {
	msg := Message{Name: e.Name, Time: e.Time.UnixNano()}
	switch e.Kind {
	case tlsauto.Obtained:
		msg.Kind, msg.Serial = KindObtained, r.servedSerial(e.Name)
	case tlsauto.Renewed:
		msg.Kind, msg.Serial = KindRenewed, r.servedSerial(e.Name)
	case tlsauto.Failed:
		msg.Kind = KindFailed
		if e.Err != nil {
			msg.Err = e.Err.Error()
		}
	default:
		return
	}
	r.say(msg)
}

// serveHandshakes completes the TLS handshake of every connection on ln and
// closes it, until ln is closed.
func serveHandshakes(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_ = c.(*tls.Conn).Handshake()
		})
	}
}

func loadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// SNI returns a server name that a managed name's certificate serves: the
// name itself, or for a wildcard a name one label below it.
func SNI(name string) string {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return "x." + rest
	}
	return name
}

// holdProvider is the member's DNS provider: the real one, whose appends can
// be made to hang after they were written, as a member that stalls (or is
// about to be killed) mid-challenge.
type holdProvider struct {
	inner   dnsprovider.Provider
	armed   atomic.Bool
	release <-chan struct{}
	say     func(Message)
}

func (h *holdProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	out, err := h.inner.AppendRecords(ctx, zone, recs)
	if err != nil || !h.armed.CompareAndSwap(true, false) {
		return out, err
	}
	for _, rec := range recs {
		rr := rec.RR()
		h.say(Message{Kind: KindHeld, Name: libdns.AbsoluteName(rr.Name, zone), Value: rr.Data})
	}
	select {
	case <-h.release:
		return out, nil
	case <-ctx.Done():
		return out, ctx.Err()
	}
}

func (h *holdProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return h.inner.DeleteRecords(ctx, zone, recs)
}

func (h *holdProvider) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	g, ok := h.inner.(libdns.RecordGetter)
	if !ok {
		return nil, fmt.Errorf("GetRecords: %w", dnsprovider.ErrNotSupported)
	}
	return g.GetRecords(ctx, zone)
}

func (h *holdProvider) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	s, ok := h.inner.(libdns.RecordSetter)
	if !ok {
		return nil, fmt.Errorf("SetRecords: %w", dnsprovider.ErrNotSupported)
	}
	return s.SetRecords(ctx, zone, recs)
}
