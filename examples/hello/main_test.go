package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/tlsauto"
)

// TestOneLinerServesVerifiedHTTPS runs what main runs, tlsauto.Listen with
// settings from CERTFLEET_* variables, against the in-process test world.
func TestOneLinerServesVerifiedHTTPS(t *testing.T) {
	w := testacme.Start(t, testacme.Options{})
	dnsprovider.Register("testacme-hello", func(func(string) string) (dnsprovider.Provider, error) { return w.Provider(), nil })
	roots := filepath.Join(t.TempDir(), "acme-roots.pem")
	if err := os.WriteFile(roots, w.ACMERootsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		tlsauto.EnvDomains:            "hello.example.test, *.hello.example.test",
		tlsauto.EnvEmail:              "ops@example.test",
		tlsauto.EnvCA:                 w.DirectoryURL(),
		tlsauto.EnvCARoots:            roots,
		tlsauto.EnvDNSProvider:        "testacme-hello",
		tlsauto.EnvStorage:            t.TempDir(),
		tlsauto.EnvResolvers:          w.DNSAddr(),
		tlsauto.EnvPropagationTimeout: "-1s",
		tlsauto.EnvStartTimeout:       "1m",
	} {
		t.Setenv(k, v)
	}

	ln, err := tlsauto.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: hello()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close() // closes ln, and with it the Manager
		<-done
	})

	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: w.Roots()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		},
	}}
	defer client.CloseIdleConnections()
	for _, host := range []string{"hello.example.test", "www.hello.example.test"} {
		resp, err := client.Get("https://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello from " + host; !strings.HasPrefix(string(body), want) {
			t.Fatalf("body %q, want %q…", body, want)
		}
	}
}
