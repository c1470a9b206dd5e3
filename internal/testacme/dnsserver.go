package testacme

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// DNSServer is an authoritative DNS server for the zones in a Zones, over UDP
// and TCP on the same address. See zoneSet.answer for how it answers.
//
// A server can be paused: it then keeps answering from the data as it was
// when Pause was called, like a secondary nameserver that has not caught up,
// until Resume.
type DNSServer struct {
	zones  *Zones
	addr   string
	frozen atomic.Pointer[zoneSet]
	count  atomic.Int64

	udp, tcp *dns.Server
	done     chan error // receives the result of each of the two serve loops

	closeOnce sync.Once
	closeErr  error
}

// NewDNSServer starts a server for zones on addr, an "ip:port" such as
// "127.0.0.1:0" (a free port, the same one for UDP and TCP) or
// "127.0.0.3:5353". Any 127.x.y.z address works on Linux without setup.
// Close stops it.
func NewDNSServer(zones *Zones, addr string) (*DNSServer, error) {
	if zones == nil {
		return nil, errors.New("testacme: NewDNSServer: zones is nil; create them with NewZones")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("testacme: DNS server address %q: want ip:port such as 127.0.0.1:0: %w", addr, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("testacme: DNS server address %q: host must be an IP address such as 127.0.0.1", addr)
	}
	pc, ln, err := listenBoth(host, port)
	if err != nil {
		return nil, fmt.Errorf("testacme: DNS server on %s: %w", addr, err)
	}
	s := &DNSServer{
		zones: zones,
		addr:  ln.Addr().String(),
		done:  make(chan error, 2),
	}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS), NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveDNS), NotifyStartedFunc: notify}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() { s.done <- srv.ActivateAndServe() }()
	}
	// Shutdown fails on a server that has not started yet, so wait for both.
	for range 2 {
		select {
		case <-started:
		case err := <-s.done:
			// Closing the sockets ends the other loop whether it started or not.
			_, _ = pc.Close(), ln.Close()
			<-s.done
			return nil, fmt.Errorf("testacme: DNS server on %s: %w", addr, err)
		}
	}
	return s, nil
}

// listenBoth opens a UDP socket and a TCP listener on the same host and port;
// with port "0", on a port free for both.
func listenBoth(host, port string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, err
		}
		p := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}

// Addr returns the "ip:port" the server answers on, over UDP and TCP.
func (s *DNSServer) Addr() string { return s.addr }

// Pause makes the server answer from the data as it is now until Resume,
// whatever changes are made meanwhile. Pausing a paused server takes a new
// snapshot.
func (s *DNSServer) Pause() { s.frozen.Store(s.zones.load()) }

// Resume makes a paused server answer from the current data again.
func (s *DNSServer) Resume() { s.frozen.Store(nil) }

// Paused reports whether the server is paused.
func (s *DNSServer) Paused() bool { return s.frozen.Load() != nil }

// Queries returns how many queries the server has answered.
func (s *DNSServer) Queries() int64 { return s.count.Load() }

func (s *DNSServer) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	data := s.frozen.Load()
	if data == nil {
		data = s.zones.load()
	}
	m := data.answer(req)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
			m.SetEdns0(opt.UDPSize(), false)
		}
		m.Truncate(size)
	}
	s.count.Add(1)
	_ = w.WriteMsg(m) // a client that went away is not our concern
}

// Close stops the server and waits until it has stopped answering. It is
// safe to call more than once.
func (s *DNSServer) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if err := srv.Shutdown(); err != nil && !isNotStarted(err) {
				errs = append(errs, err)
			}
		}
		// Both serve loops must have returned before Close does.
		for range 2 {
			<-s.done
		}
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("testacme: closing DNS server %s: %w", s.addr, errors.Join(errs...))
		}
	})
	return s.closeErr
}

// isNotStarted matches the error Shutdown returns for a server whose serve
// loop already ended.
func isNotStarted(err error) bool { return err != nil && err.Error() == "dns: server not started" }
