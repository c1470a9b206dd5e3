package main

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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	_ "github.com/certfleet/certfleet/dnsprovider/all" // the Route 53 provider, by name
	"github.com/certfleet/certfleet/storage"
	_ "github.com/certfleet/certfleet/storage/all" // postgres:// URLs
	"github.com/certfleet/certfleet/tlsauto"
)

// runMember is one member of the fleet: an ordinary certfleet server whose
// settings come from CERTFLEET_* variables. It spells its Config out (rather
// than calling tlsauto.NewFromEnv) to hook OnEvent and report what it does.
// Commands arrive on in: "start", "renew"; it exits when in closes.
func runMember(id string, in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	say := func(r report) {
		if r.Time.IsZero() {
			r.Time = time.Now()
		}
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(r)
	}
	if err := member(id, in, say); err != nil {
		say(report{Kind: "error", Err: err.Error()})
		return err
	}
	return nil
}

func member(id string, in io.Reader, say func(report)) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dns, err := dnsprovider.FromEnv(os.Getenv("CERTFLEET_DNS_PROVIDER"))
	if err != nil {
		return err
	}
	store, err := storage.Open(ctx, os.Getenv("CERTFLEET_STORAGE"))
	if err != nil {
		return err
	}
	if c, ok := store.(io.Closer); ok {
		defer c.Close()
	}
	pem, err := os.ReadFile(os.Getenv("CERTFLEET_CA_ROOTS"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	dnsPort, err := strconv.Atoi(os.Getenv("CERTFLEET_DNS_PORT"))
	if err != nil {
		return fmt.Errorf("CERTFLEET_DNS_PORT: %w", err)
	}

	var m *tlsauto.Manager
	m, err = tlsauto.New(tlsauto.Config{
		Domains:   strings.Split(os.Getenv("CERTFLEET_DOMAINS"), ","),
		Email:     os.Getenv("CERTFLEET_EMAIL"),
		CA:        os.Getenv("CERTFLEET_CA"),
		CARoots:   roots,
		DNS:       dns,
		Storage:   store,
		Resolvers: strings.Split(os.Getenv("CERTFLEET_RESOLVERS"), ","),
		DNSPort:   dnsPort, // the propagation check asks every authoritative nameserver
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("member", id),
		OnEvent: func(e tlsauto.Event) {
			switch e.Kind {
			case tlsauto.Obtained:
				say(report{Kind: "obtained", Serial: servedSerial(m), Time: e.Time})
			case tlsauto.Renewed:
				say(report{Kind: "renewed", Serial: servedSerial(m), Time: e.Time})
			}
		},
	})
	if err != nil {
		return err
	}
	defer m.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tlsLn := tls.NewListener(ln, m.TLSConfig())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		tlsLn.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
			})
		}
	})
	say(report{Kind: "created", Addr: ln.Addr().String()})

	lines := bufio.NewScanner(in)
	for lines.Scan() {
		switch lines.Text() {
		case "start":
			wg.Go(func() {
				if err := m.Start(ctx); err != nil {
					say(report{Kind: "error", Err: err.Error()})
					return
				}
				say(report{Kind: "ready"})
				watchServed(ctx, m, say)
			})
		case "renew":
			wg.Go(func() {
				if err := m.Renew(ctx, m.Domains()[0]); err != nil {
					say(report{Kind: "error", Err: err.Error()})
				}
			})
		}
	}
	return nil
}

// watchServed reports, checking every millisecond, each new certificate the
// member serves.
func watchServed(ctx context.Context, m *tlsauto.Manager, say func(report)) {
	last := ""
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		if s := servedSerial(m); s != last {
			say(report{Kind: "serving", Serial: s})
			last = s
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func servedSerial(m *tlsauto.Manager) string {
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: domain})
	if err != nil || c.Leaf == nil {
		return ""
	}
	return c.Leaf.SerialNumber.Text(16)
}
