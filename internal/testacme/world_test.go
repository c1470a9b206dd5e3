package testacme_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/mholt/acmez/v3/acme"
)

func TestWorldIssuesCertificateForApexAndWildcard(t *testing.T) {
	start := time.Now()
	w := testacme.Start(t, testacme.Options{})
	t.Logf("New took %v", time.Since(start))
	c := newClient(t, w, nil)

	start = time.Now()
	certPEM, keyPEM, err := c.issue("example.test", "*.example.test")
	if err != nil {
		t.Fatalf("issuing: %v", err)
	}
	t.Logf("issuance took %v", time.Since(start))

	for _, name := range []string{"example.test", "www.example.test"} {
		chain, err := c.serve(t, certPEM, keyPEM, name, w.Roots())
		if err != nil {
			t.Fatalf("TLS handshake for %s verified against w.Roots(): %v", name, err)
		}
		if len(chain) != 3 {
			t.Errorf("verified chain for %s has %d certificates, want leaf, intermediate, root", name, len(chain))
		}
	}
	if got, want := w.Counts(), (testacme.Counts{Orders: 1, Authorizations: 2, Certificates: 1}); got != want {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
	calls := w.Provider().Calls()
	if calls.Append == 0 || calls.Append != calls.Delete {
		t.Errorf("provider calls %+v: want as many deletes as appends, at least one", calls)
	}
	if txt := w.Zones().TXT("_acme-challenge.example.test"); len(txt) != 0 {
		t.Errorf("challenge TXT records left after issuance: %q", txt)
	}
}

func TestWorldIssuesDespiteBadNonces(t *testing.T) {
	w := testacme.Start(t, testacme.Options{BadNoncePercent: 30})
	c := newClient(t, w, nil)
	if _, _, err := c.issue("www.example.test"); err != nil {
		t.Fatalf("issuing with 30%% bad nonces: %v", err)
	}
	if got := w.Counts().Certificates; got != 1 {
		t.Errorf("Counts().Certificates = %d, want 1", got)
	}
}

func TestTwoWorldsRunAtOnce(t *testing.T) {
	worlds := []*testacme.World{
		testacme.Start(t, testacme.Options{}),
		testacme.Start(t, testacme.Options{Zones: []string{"example.test", "other.test"}, BadNoncePercent: 10}),
	}
	certs := make([][]byte, len(worlds))
	errs := make([]error, len(worlds))
	clients := []*client{newClient(t, worlds[0], nil), newClient(t, worlds[1], nil)}
	var wg sync.WaitGroup
	for i := range worlds {
		wg.Go(func() { certs[i], _, errs[i] = clients[i].issue("example.test") })
	}
	wg.Wait()
	for i, w := range worlds {
		if errs[i] != nil {
			t.Fatalf("world %d: issuing: %v", i, errs[i])
		}
		leaf := parseLeaf(t, certs[i])
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: w.Roots(), Intermediates: intermediates(t, certs[i])}); err != nil {
			t.Errorf("world %d: certificate does not verify against its own roots: %v", i, err)
		}
		other := worlds[1-i]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: other.Roots(), Intermediates: intermediates(t, certs[i])}); err == nil {
			t.Errorf("world %d: certificate verifies against the other world's roots; worlds must not share a CA", i)
		}
		if got := w.Counts(); got.Orders != 1 || got.Certificates != 1 {
			t.Errorf("world %d: Counts() = %+v, want 1 order and 1 certificate", i, got)
		}
	}
}

func TestWorldAppliesOptions(t *testing.T) {
	const keyID, hmacKey = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	w := testacme.Start(t, testacme.Options{
		CertValidity:  time.Hour,
		Intermediates: 2,
		EABKeys:       map[string]string{keyID: hmacKey},
	})

	_, _, err := newClient(t, w, nil).issue("example.test")
	var problem acme.Problem
	if !errors.As(err, &problem) || !strings.Contains(problem.Type, "externalAccountRequired") {
		t.Fatalf("issuing without account binding: got %v, want an externalAccountRequired problem", err)
	}

	certPEM, _, err := newClient(t, w, &acme.EAB{KeyID: keyID, MACKey: hmacKey}).issue("example.test")
	if err != nil {
		t.Fatalf("issuing with account binding: %v", err)
	}
	leaf := parseLeaf(t, certPEM)
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < time.Hour-time.Minute || got > time.Hour+time.Minute {
		t.Errorf("certificate validity %v, want about 1h", got)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: w.Roots(), Intermediates: intermediates(t, certPEM)})
	if err != nil {
		t.Fatalf("verifying: %v", err)
	}
	if got := len(chains[0]); got != 4 {
		t.Errorf("verified chain has %d certificates, want leaf, 2 intermediates, root", got)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name  string
		opts  testacme.Options
		field string
	}{
		{"negative validity", testacme.Options{CertValidity: -time.Second}, "CertValidity"},
		{"sub-second validity", testacme.Options{CertValidity: time.Millisecond}, "CertValidity"},
		{"bad nonce over 100", testacme.Options{BadNoncePercent: 101}, "BadNoncePercent"},
		{"negative bad nonce", testacme.Options{BadNoncePercent: -1}, "BadNoncePercent"},
		{"negative intermediates", testacme.Options{Intermediates: -1}, "Intermediates"},
		{"sub-second ARI Retry-After", testacme.Options{ARIRetryAfter: 1500 * time.Millisecond}, "ARIRetryAfter"},
		{"EAB key not base64url", testacme.Options{EABKeys: map[string]string{"kid": "not base64!"}}, "EABKeys"},
		{"empty EAB key ID", testacme.Options{EABKeys: map[string]string{"": "AAAA"}}, "EABKeys"},
		{"invalid zone", testacme.Options{Zones: []string{"bad..zone"}}, "Zones[0]"},
		{"duplicate zone", testacme.Options{Zones: []string{"a.test", "A.test."}}, "Zones[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := testacme.New(tt.opts)
			if err == nil {
				_ = w.Close()
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name the field %s", err, tt.field)
			}
		})
	}
}

func TestEABErrorDoesNotLeakKey(t *testing.T) {
	const secret = "c2VjcmV0LXNlbnRpbmVs!"
	_, err := testacme.New(testacme.Options{EABKeys: map[string]string{"kid": secret}})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v: want an error that does not quote the key", err)
	}
}

func parseLeaf(t *testing.T, chainPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(chainPEM)
	if block == nil {
		t.Fatal("no PEM block in the issued chain")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func intermediates(t *testing.T, chainPEM []byte) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	_, rest := pem.Decode(chainPEM)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return pool
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(cert)
	}
}

func TestDoneOrdersLeaveNoAuthorizationToReuseUnlessAsked(t *testing.T) {
	for _, reuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReuseAuthorizations=%v", reuse), func(t *testing.T) {
			w := testacme.Start(t, testacme.Options{ReuseAuthorizations: reuse})
			c := newClient(t, w, nil)
			if _, _, err := c.issue("example.test"); err != nil {
				t.Fatal(err)
			}
			if got := testacme.Reusable(w, "example.test"); got != reuse {
				t.Errorf("an authorization for example.test is reusable: %v, want %v", got, reuse)
			}
			// The next order is served as usual.
			if _, _, err := c.issue("example.test"); err != nil {
				t.Fatal(err)
			}
			if got := w.Counts(); got.Certificates != 2 || !reuse && got.Authorizations != 2 {
				t.Errorf("Counts() = %+v after two orders", got)
			}
		})
	}
}
