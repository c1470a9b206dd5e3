package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/wait"
	"github.com/certfleet/certfleet/storage/file"
	"github.com/certfleet/certfleet/tlsauto"
)

// fill has a Manager in this process obtain a certificate for each name
// into w's storage, through the world's in-process provider.
func fill(t *testing.T, w *world, st certmagic.Storage, names ...string) {
	t.Helper()
	m, err := tlsauto.New(tlsauto.Config{
		Domains: names, Email: "ops@example.test", CA: w.DirectoryURL(), CARoots: w.ACMERoots(),
		DNS: w.Provider(), Storage: st, Resolvers: []string{w.DNSAddr()}, DNSPort: w.DNSPort(),
		ChainRoots: w.Roots(), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

func openFile(t *testing.T, dir string) *file.Storage {
	t.Helper()
	st, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func statusJSON(t *testing.T, w *world) (statusReport, result) {
	t.Helper()
	r := w.run(t, nil, "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json (exit %d): %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	return rep, r
}

// freezable is storage and a DNS provider that start failing writes and
// deletes when frozen: a member that loses both at once cannot clean up,
// like one that dies.
type freezable struct {
	certmagic.Storage
	frozen *atomic.Bool
}

var errFrozen = errors.New("frozen")

func (f freezable) Store(ctx context.Context, key string, v []byte) error {
	if f.frozen.Load() {
		return errFrozen
	}
	return f.Storage.Store(ctx, key, v)
}

func (f freezable) Delete(ctx context.Context, key string) error {
	if f.frozen.Load() {
		return errFrozen
	}
	return f.Storage.Delete(ctx, key)
}

type freezableDNS struct {
	*testacme.Provider
	frozen *atomic.Bool
}

func (f freezableDNS) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if f.frozen.Load() {
		return nil, errFrozen
	}
	return f.Provider.DeleteRecords(ctx, zone, recs)
}

// orphan leaves a challenge record for name in the zone and the journal,
// owned by a solver whose lease lapses at once.
func orphan(t *testing.T, w *world, st certmagic.Storage, name string) {
	t.Helper()
	frozen := new(atomic.Bool)
	s, err := dns01.New(dns01.Config{
		DNS: freezableDNS{w.Provider(), frozen}, Storage: freezable{st, frozen},
		Resolvers: []string{w.DNSAddr()}, NameserverPort: w.DNSPort(), OwnerLease: 100 * time.Millisecond,
		Retry: dnsprovider.RetryPolicy{MaxAttempts: 1}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	chal := acme.Challenge{Type: "dns-01", Identifier: acme.Identifier{Type: "dns", Value: name}, KeyAuthorization: "orphan-" + name}
	if err := s.Present(context.Background(), chal); err != nil {
		t.Fatal(err)
	}
	frozen.Store(true)
	_ = s.Close() // fails: the record and its journal entry stay
}

func TestStatusExportSweepOnAStorageAManagerFilled(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	st := openFile(t, w.storageDir)
	fill(t, w, st, "a.example.test", "*.example.test")
	orphan(t, w, st, "gone.example.test")
	wait.For(t, 10*time.Second, "the orphan's lease to lapse", func() bool {
		j, err := dns01.Journal(context.Background(), st)
		return err == nil && len(j) == 1 && j[0].Orphaned
	})

	rep, r := statusJSON(t, w)
	if r.code != 0 || !rep.OK {
		t.Fatalf("status exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if len(rep.Certificates) != 2 {
		t.Fatalf("status lists %d certificates, want 2: %+v", len(rep.Certificates), rep.Certificates)
	}
	for i, want := range []string{"*.example.test", "a.example.test"} {
		ci := rep.Certificates[i]
		if ci.Name != want || ci.Issuer == "" || ci.Serial == "" || ci.Due || ci.DaysLeft < 80 {
			t.Errorf("certificate %d: %+v; want %s, issued, 90 days, not due", i, ci, want)
		}
	}
	if len(rep.Challenges) != 1 || rep.Challenges[0].Name != "_acme-challenge.gone.example.test." || !rep.Challenges[0].Orphaned {
		t.Errorf("challenge records: %+v; want the orphan of gone.example.test", rep.Challenges)
	}
	if !rep.Locks.Visible {
		t.Errorf("locks of the file backend not visible: %s", rep.Locks.Note)
	}
	r = w.run(t, nil, "status")
	for _, want := range []string{"CERTIFICATES (2)", "a.example.test", "CHALLENGE RECORDS IN THE JOURNAL (1)", "MEMBERS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status does not show %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("status:\n%s", r.stdout)

	// export
	out := filepath.Join(t.TempDir(), "tls")
	r = w.run(t, nil, "export", "a.example.test", "--out", out)
	if r.code != 0 {
		t.Fatalf("export exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("export:\n%s", r.stdout)
	if fi, err := os.Stat(filepath.Join(out, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v, mode %v; want 0600", err, fi.Mode())
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, "fullchain.pem"), filepath.Join(out, "key.pem"))
	if err != nil {
		t.Fatalf("the exported chain and key do not match: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	inter := x509.NewCertPool()
	chain, _ := os.ReadFile(filepath.Join(out, "chain.pem"))
	inter.AppendCertsFromPEM(chain)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "a.example.test", Roots: w.Roots(), Intermediates: inter}); err != nil {
		t.Errorf("the exported certificate does not verify with chain.pem: %v", err)
	}

	// sweep --dry-run lists the orphan and deletes nothing; sweep deletes it.
	r = w.run(t, nil, "sweep", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would delete 1") || !strings.Contains(r.stdout, "_acme-challenge.gone.example.test") {
		t.Fatalf("sweep --dry-run exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("sweep --dry-run:\n%s", r.stdout)
	if got := w.Zones().TXTRecords(); len(got) != 1 {
		t.Fatalf("after a dry run the zone holds %q, want the orphan still", got)
	}
	r = w.run(t, nil, "sweep")
	if r.code != 0 || !strings.Contains(r.stdout, "deleted 1") {
		t.Fatalf("sweep exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("sweep:\n%s", r.stdout)
	if got := w.Zones().TXTRecords(); len(got) != 0 {
		t.Errorf("after sweep the zone holds %q", got)
	}
	if j, err := dns01.Journal(context.Background(), st); err != nil || len(j) != 0 {
		t.Errorf("after sweep the journal lists %+v (%v)", j, err)
	}
}

func TestStatusFailsWhenACertificateIsDue(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	st := openFile(t, w.storageDir)
	// Nine and a half days of life, half a day left: 5 %.
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "due.example.test"}, DNSNames: []string{"due.example.test"},
		NotBefore: now.Add(-9 * 24 * time.Hour), NotAfter: now.Add(12 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k := certmagic.StorageKeys.SiteCert("some-ca", "due.example.test")
	if err := st.Store(context.Background(), k, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	rep, r := statusJSON(t, w)
	if r.code != 1 || rep.OK || len(rep.Certificates) != 1 || !rep.Certificates[0].Due {
		t.Fatalf("status exited %d with %+v; want 1 and the certificate due", r.code, rep)
	}
	if r := w.run(t, nil, "status"); r.code != 1 || !strings.Contains(r.stdout, "(due)") {
		t.Errorf("status exited %d:\n%s", r.code, r.stdout)
	}
}

func TestRenewReplacesTheCertificate(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	st := openFile(t, w.storageDir)
	fill(t, w, st, "r.example.test")
	before, _, err := certFiles(context.Background(), st, "r.example.test")
	if err != nil {
		t.Fatal(err)
	}
	r := w.run(t, nil, "renew", "r.example.test")
	if r.code != 0 {
		t.Fatalf("renew exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("renew:\n%s", r.stdout)
	var out struct{ Serial string }
	_, rest, _ := strings.Cut(r.stdout, "serial ")
	out.Serial, _, _ = strings.Cut(rest, ",")
	after, _, err := certFiles(context.Background(), st, "r.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if after.Serial == before.Serial || out.Serial != after.Serial {
		t.Errorf("serial before %s, after %s, printed %s: want a new certificate, stored and printed", before.Serial, after.Serial, out.Serial)
	}
	if got := w.Counts().Certificates; got != 2 {
		t.Errorf("the CA issued %d certificates, want 2", got)
	}
}

func TestBadFlagOrVariablePrintsUsageAndExits2(t *testing.T) {
	w := newWorld(t, testacme.Options{})
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", nil, nil, "usage: certfleet COMMAND"},
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", nil, []string{"doctor", "--bogus"}, "flag provided but not defined: -bogus"},
		{"export without --out", nil, []string{"export", "a.example.test"}, "--out DIR is required"},
		{"renew without a name", nil, []string{"renew"}, "name exactly one certificate"},
		{"status with an argument", nil, []string{"status", "extra"}, `unexpected argument "extra"`},
		{"bad port variable", map[string]string{"CERTFLEET_DNS_PORT": "fifty-three"}, []string{"doctor", "example.test"}, "CERTFLEET_DNS_PORT"},
		{"no provider", map[string]string{"CERTFLEET_DNS_PROVIDER": ""}, []string{"sweep"}, "CERTFLEET_DNS_PROVIDER: not set"},
		{"bad e-mail", map[string]string{"CERTFLEET_EMAIL": "not an address"}, []string{"renew", "a.example.test"}, "CERTFLEET_EMAIL"},
		{"unknown storage scheme", map[string]string{"CERTFLEET_STORAGE": "nosuch://x"}, []string{"status"}, "nosuch"},
		{"bad start timeout", map[string]string{"CERTFLEET_START_TIMEOUT": "soon"}, []string{"status"}, "CERTFLEET_START_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := w.run(t, tt.env, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, "usage: certfleet") || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not show the usage and %q:\n%s", tt.want, r.stderr)
			}
		})
	}
}
