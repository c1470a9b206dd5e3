// Command demo shows certfleet's whole job offline: it starts an in-process
// ACME CA (Let's Encrypt's Pebble) and an authoritative DNS server on
// loopback, obtains certificates for example.test and *.example.test over
// DNS-01, serves HTTPS with them, makes verified requests, and prints what
// happened and how long each step took.
//
//	go run ./examples/demo
//
// With --dns bind, the DNS server is a real BIND 9 (named, which must be
// installed: Debian's bind9 package) that the demo starts on loopback with a
// generated zone and TSIG key; certfleet writes the challenge records with
// RFC 2136 dynamic updates, as it would to a company's own nameserver, and
// the CA validates through BIND.
//
//	go run ./examples/demo --dns bind
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/rfc2136"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/bind"
	"github.com/certfleet/certfleet/metrics"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

func main() {
	dnsFlag := flag.String("dns", "builtin", "the DNS server certfleet writes to: builtin (in-process) or bind (a local BIND 9 over RFC 2136; needs named)")
	flag.Parse()
	if err := run(os.Stdout, *dnsFlag); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// dnsSide is where the demo's challenge records go.
type dnsSide struct {
	provider dnsprovider.Provider
	addr     string              // answers for the zone, and resolves
	left     func() (int, error) // challenge records left
	close    func() error
}

// builtinDNS uses the test world's own DNS server and provider.
func builtinDNS(world *testacme.World) dnsSide {
	return dnsSide{
		provider: world.Provider(),
		addr:     world.DNSAddr(),
		left:     func() (int, error) { return len(world.Zones().TXT("_acme-challenge.example.test")), nil },
		close:    func() error { return nil },
	}
}

// bindDNS starts BIND 9 for example.test and writes to it over RFC 2136.
func bindDNS() (dnsSide, error) {
	if _, err := bind.Named(); err != nil {
		return dnsSide{}, fmt.Errorf("--dns bind needs BIND 9's named, which is not installed: apt-get install bind9 (Debian, Ubuntu), or run the demo without --dns: %w", err)
	}
	ns, err := bind.New(bind.Options{Zones: []string{"example.test"}})
	if err != nil {
		return dnsSide{}, err
	}
	p, err := rfc2136.New(rfc2136.Config{Nameserver: ns.Addr(), TSIGKey: ns.KeyName(), TSIGSecret: ns.Secret(), TSIGAlgorithm: ns.Algorithm()})
	if err != nil {
		ns.Close()
		return dnsSide{}, err
	}
	return dnsSide{
		provider: p,
		addr:     ns.Addr(),
		left: func() (int, error) {
			txt, err := ns.TXTRecords(context.Background())
			return len(txt), err
		},
		close: ns.Close,
	}, nil
}

func run(out io.Writer, dnsMode string) (err error) {
	total := time.Now()
	step := func(what string, start time.Time) {
		fmt.Fprintf(out, "  %-52s %8s\n", what, time.Since(start).Round(time.Millisecond))
	}
	if dnsMode != "builtin" && dnsMode != "bind" {
		return fmt.Errorf("--dns %q: want builtin or bind", dnsMode)
	}
	fmt.Fprintln(out, "certfleet demo: DNS-01 against an in-process CA, nothing leaves loopback")

	start := time.Now()
	var side dnsSide
	var opts testacme.Options
	if dnsMode == "bind" {
		if side, err = bindDNS(); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, side.close()) }()
		step("started BIND 9 (named) for example.test on "+side.addr, start)
		start = time.Now()
		// The CA validates through BIND, as a real CA asks its resolver.
		opts.VAResolver = side.addr
	}
	world, err := testacme.New(opts)
	if err != nil {
		return err
	}
	defer world.Close()
	if dnsMode == "bind" {
		step("started ACME CA (Pebble), validating through BIND", start)
	} else {
		side = builtinDNS(world)
		step("started ACME CA (Pebble) and DNS server", start)
	}

	dir, err := os.MkdirTemp("", "certfleet-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		return err
	}
	defer store.Close()

	domains := []string{"example.test", "*.example.test"}
	m, err := tlsauto.New(tlsauto.Config{
		Domains: domains,
		Email:   "ops@example.test",
		CA:      world.DirectoryURL(),
		CARoots: world.ACMERoots(),
		DNS:     side.provider,
		Storage: store,
		// The zone lookup asks the demo's DNS server; the propagation check
		// then asks every authoritative nameserver of the zone (policy
		// "all"), which listens on that server's port instead of 53.
		Resolvers: []string{side.addr},
		DNSPort:   port(side.addr),
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer m.Close()

	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		return err
	}
	c := world.Counts()
	step(fmt.Sprintf("obtained %d certificates over DNS-01 (%d orders)", c.Certificates, c.Orders), start)
	left, err := side.left()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "      the challenge records were checked on every authoritative nameserver, then removed: %d TXT left\n", left)

	start = time.Now()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		TLSConfig:         m.TLSConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello, %s, over %s\n", r.Host, r.Proto)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		srv.Close()
		<-served
	}()
	step("serving HTTPS on "+ln.Addr().String(), start)

	client := verifyingClient(ln.Addr().String(), world.Roots())
	defer client.CloseIdleConnections()
	for _, host := range []string{"example.test", "www.example.test"} {
		start = time.Now()
		state, body, err := get(ctx, client, "https://"+host+"/")
		if err != nil {
			return err
		}
		step("verified request to https://"+host+"/", start)
		fmt.Fprintf(out, "      response: %s", body)
		for i, cert := range state.VerifiedChains[0] {
			fmt.Fprintf(out, "      chain[%d]: %s (issuer %s)\n", i, name(cert), cert.Issuer.CommonName)
			if i == 0 {
				fmt.Fprintf(out, "                names %s, serial %x, valid until %s\n",
					strings.Join(cert.DNSNames, ", "), cert.SerialNumber, cert.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
	if err := printMetrics(out, m); err != nil {
		return err
	}
	fmt.Fprintf(out, "done in %s\n", time.Since(total).Round(time.Millisecond))
	return nil
}

// printMetrics scrapes the Manager's Prometheus metrics once and prints the
// interesting ones, as a monitoring system would see them.
func printMetrics(out io.Writer, m *tlsauto.Manager) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(m))
	fams, err := reg.Gather()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "metrics (one scrape of metrics.New(m)):")
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			var v string
			switch {
			case mt.GetHistogram() != nil:
				h := mt.GetHistogram()
				if h.GetSampleCount() == 0 {
					continue
				}
				v = fmt.Sprintf("count %d, sum %.3fs", h.GetSampleCount(), h.GetSampleSum())
			case mt.GetCounter() != nil:
				v = fmt.Sprint(mt.GetCounter().GetValue())
			case mt.GetGauge() != nil:
				v = fmt.Sprint(mt.GetGauge().GetValue())
				if strings.HasSuffix(f.GetName(), "_timestamp_seconds") {
					v = time.Unix(int64(mt.GetGauge().GetValue()), 0).UTC().Format(time.RFC3339)
				}
			}
			fmt.Fprintf(out, "      %s{%s} %s\n", f.GetName(), strings.Join(labels, ","), v)
		}
	}
	return nil
}

// verifyingClient returns an HTTP client that sends every request to addr
// and verifies the server's chain against roots.
func verifyingClient(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2: true,
		},
	}
}

func get(ctx context.Context, c *http.Client, url string) (*tls.ConnectionState, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		return nil, "", errors.New("response without a verified TLS chain")
	}
	return resp.TLS, string(body), nil
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

func name(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return strings.Join(c.DNSNames, ", ")
}
