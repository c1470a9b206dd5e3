package tlsauto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"
)

func selfSigned(t *testing.T, notBefore time.Time, names ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(notBefore.UnixNano()), DNSNames: names, NotBefore: notBefore, NotAfter: notBefore.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestGetCertificateMatchesNames(t *testing.T) {
	now := time.Now()
	apex, wild := selfSigned(t, now, "example.com"), selfSigned(t, now, "*.example.com")
	m := &Manager{}
	m.served.set("example.com", apex)
	m.served.set("*.example.com", wild)
	tests := []struct {
		sni  string
		want *tls.Certificate
	}{
		{"example.com", apex},
		{"EXAMPLE.com", apex},
		{"example.com.", apex},
		{"www.example.com", wild},
		{"WWW.Example.Com.", wild},
		{"a.b.example.com", nil}, // a wildcard covers one label
		{"example.org", nil},
		{"com", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.sni})
		if got != tt.want {
			t.Errorf("GetCertificate(%q) = %v, %v; want %v", tt.sni, got, err, tt.want)
		}
		if tt.want == nil && err == nil {
			t.Errorf("GetCertificate(%q) returned no error for an unserved name", tt.sni)
		}
	}
}

func TestServedKeepsNewerCertificate(t *testing.T) {
	now := time.Now()
	older, newer := selfSigned(t, now.Add(-time.Hour), "example.com"), selfSigned(t, now, "example.com")
	var s served
	if !s.set("example.com", newer) {
		t.Fatal("first certificate not served")
	}
	if s.set("example.com", older) {
		t.Fatal("an older certificate replaced a newer one")
	}
	if got := s.load().lookup("example.com"); got != newer {
		t.Fatal("the newer certificate is not served")
	}
}

func TestPublishedSnapshotsNeverChange(t *testing.T) {
	cert := selfSigned(t, time.Now(), "*.example.com")
	var s served
	const names = 2000 // several per shard
	name := func(i int) string { return fmt.Sprintf("n%d.example.com", i) }
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < names; i += 4 {
				s.set(name(i), cert)
			}
		})
	}
	wg.Wait()
	before := s.load()
	for i := range names {
		if before.lookup(name(i)) != cert {
			t.Fatalf("%s is not served after concurrent publishes", name(i))
		}
	}
	// Removing every other name, and wildcards added, leave the snapshot
	// taken before untouched.
	for i := 0; i < names; i += 2 {
		s.remove(name(i))
	}
	s.set("*.example.org", cert)
	after := s.load()
	for i := range names {
		if before.lookup(name(i)) != cert {
			t.Fatalf("%s vanished from a published snapshot", name(i))
		}
		if got, want := after.lookup(name(i)) != nil, i%2 == 1; got != want {
			t.Fatalf("%s served %v after the removals, want %v", name(i), got, want)
		}
	}
	if before.lookup("www.example.org") != nil || after.lookup("www.example.org") != cert {
		t.Fatal("the wildcard was not published in a new snapshot only")
	}
}

func TestGetCertificateDoesNotAllocate(t *testing.T) {
	m := &Manager{}
	m.served.set("*.example.com", selfSigned(t, time.Now(), "*.example.com"))
	hello := &tls.ClientHelloInfo{ServerName: "www.example.com"}
	if n := testing.AllocsPerRun(100, func() { m.GetCertificate(hello) }); n != 0 {
		t.Fatalf("GetCertificate allocates %v times per call", n)
	}
}

// BenchmarkGetCertificateWhileNamesChurn measures the handshake path for a
// name that stays served, with a still set of 1,000 names and while 1,000
// other names are added and removed without pause (what Manage and
// Unmanage do to the served snapshot), side by side.
//
//	go test -run '^$' -bench GetCertificateWhileNamesChurn -count 5 ./tlsauto/
func BenchmarkGetCertificateWhileNamesChurn(b *testing.B) {
	t := &testing.T{}
	cert := selfSigned(t, time.Now(), "*.example.com")
	churn := make([]string, 1000)
	for i := range churn {
		churn[i] = fmt.Sprintf("n%d.example.com", i)
	}
	for _, mode := range []string{"still", "churn"} {
		b.Run(mode, func(b *testing.B) {
			m := &Manager{}
			m.served.set("steady.example.com", cert)
			for _, n := range churn {
				m.served.set(n, cert)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if mode == "churn" {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						n := churn[i%len(churn)]
						m.served.remove(n)
						m.served.set(n, cert)
					}
				})
			}
			hello := &tls.ClientHelloInfo{ServerName: "steady.example.com"}
			b.ReportAllocs()
			for b.Loop() {
				if c, err := m.GetCertificate(hello); err != nil || c == nil {
					b.Fatal(err)
				}
			}
			close(stop)
			wg.Wait()
		})
	}
}

// BenchmarkPublishAmong10000Names measures what changing the served
// certificates costs while 10,000 names are served: each op takes one name
// away and publishes it again (two changes), what Unmanage and a name
// coming under management each pay, as does each renewal.
//
//	go test -run '^$' -bench PublishAmong10000Names -benchmem -count 5 ./tlsauto/
func BenchmarkPublishAmong10000Names(b *testing.B) {
	t := &testing.T{}
	old, cert := selfSigned(t, time.Now().Add(-time.Hour), "*.example.com"), selfSigned(t, time.Now(), "*.example.com")
	m := &Manager{}
	for i := range 10000 {
		m.served.set(fmt.Sprintf("n%d.example.com", i), old)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("n%d.example.com", i%10000)
		m.served.remove(name)
		m.served.set(name, cert)
		i++
	}
}

// BenchmarkStatus10000Names measures Status on a Manager with 10,000
// served names (what a scrape or a health probe costs).
//
//	go test -run '^$' -bench Status10000Names -benchmem ./tlsauto/
func BenchmarkStatus10000Names(b *testing.B) {
	t := &testing.T{}
	cert := selfSigned(t, time.Now(), "*.example.com")
	m := &Manager{names: map[string]*entry{}, s: settings{minLifetimeLeft: 0.1}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	defer m.cancel()
	for i := range 10000 {
		name := fmt.Sprintf("n%d.example.com", i)
		m.s.domains = append(m.s.domains, name)
		m.names[name] = &entry{name: name, fixed: true, managed: true, ctx: m.ctx}
		m.served.set(name, cert)
	}
	b.ReportAllocs()
	for b.Loop() {
		if st := m.Status(); len(st.Names) != 10000 || !st.Healthy {
			b.Fatalf("%d names, healthy %v", len(st.Names), st.Healthy)
		}
	}
}
