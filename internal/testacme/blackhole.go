package testacme

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Blackhole is a DNS "server" that never answers, like a nameserver behind
// a firewall that drops DNS packets: it reads UDP datagrams and drops them,
// and accepts TCP connections and reads from them without ever writing.
// Clients see timeouts, not refusals. Close stops it.
type Blackhole struct {
	addr string
	pc   net.PacketConn
	ln   net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup

	closeOnce sync.Once
}

// NewBlackhole starts a Blackhole on addr, "ip:port" over UDP and TCP, as
// NewDNSServer does.
func NewBlackhole(addr string) (*Blackhole, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) == nil {
		return nil, fmt.Errorf("testacme: blackhole address %q: want ip:port such as 127.0.0.9:0", addr)
	}
	pc, ln, err := listenBoth(host, port)
	if err != nil {
		return nil, fmt.Errorf("testacme: blackhole on %s: %w", addr, err)
	}
	b := &Blackhole{addr: ln.Addr().String(), pc: pc, ln: ln, conns: map[net.Conn]bool{}}
	b.wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			if _, _, err := pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	})
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			if b.closed {
				b.mu.Unlock()
				c.Close()
				return
			}
			b.conns[c] = true
			b.mu.Unlock()
			b.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				b.mu.Lock()
				delete(b.conns, c)
				b.mu.Unlock()
				c.Close()
			})
		}
	})
	return b, nil
}

// Addr returns the "ip:port" the blackhole listens on.
func (b *Blackhole) Addr() string { return b.addr }

// Close stops the blackhole and waits for its goroutines. It is safe to
// call more than once.
func (b *Blackhole) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		_, _ = b.pc.Close(), b.ln.Close()
		b.wg.Wait()
	})
	return nil
}
