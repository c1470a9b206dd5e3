package fleettest

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"time"
)

// Resume connects to addr for server name sni with TLS version v (such as
// tls.VersionTLS13), offering a session from cache and storing the tickets
// the server sends into it, and reports whether the session was resumed.
// It reads until the server closes the connection, as members do after the
// handshake, so that TLS 1.3 tickets (sent after the handshake) arrive.
func Resume(addr, sni string, roots *x509.CertPool, v uint16, cache tls.ClientSessionCache) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		ServerName: sni, RootCAs: roots, MinVersion: v, MaxVersion: v, ClientSessionCache: cache,
	})
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}
