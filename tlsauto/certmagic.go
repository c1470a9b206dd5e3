package tlsauto

import (
	"cmp"
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
)

// newSolver builds the DNS-01 solver of one Manager: certfleet's own, which
// journals its records in store, the storage the fleet shares.
func newSolver(c Config, s settings, store certmagic.Storage, onPropagated func(time.Duration)) (*dns01.Solver, error) {
	timeout := s.propagationTTL
	if timeout < 0 {
		timeout = 0 // no check: the solver's default applies to nothing
	}
	cfg := dns01.Config{
		DNS:                c.DNS,
		Storage:            store,
		Resolvers:          s.resolvers,
		NameserverPort:     c.DNSPort,
		Propagation:        s.propagation,
		PropagationDelay:   c.PropagationDelay,
		PropagationTimeout: timeout,
		OwnerLease:         c.SolverLease,
		OnPropagated:       onPropagated,
		SweepInterval:      c.SolverLease, // a dead member is noticed at the lease's granularity
		Logger:             s.logger.With("component", "certfleet", "logger", "dns01"),
	}
	// Config.validate checked every setting; what remains is the system's
	// resolvers, read when Resolvers is empty.
	return dns01.New(cfg)
}

// newCertmagic builds the certmagic Cache and Config of one Manager. It sets
// every field itself and then overwrites whatever certmagic's constructors
// copied from its package globals (Default, DefaultACME), so that nothing
// another library in the process configured can leak into this Manager.
// HTTP-01 and TLS-ALPN-01 are disabled: solver solves DNS-01, the only
// challenge offered.
//
// certmagic reads its globals in two places this cannot undo afterwards:
// NewACMEIssuer builds the ACME HTTP client from TrustedRoots and Resolver
// at once, so both are given explicitly here (the system roots when
// CARoots is nil, the system's resolver when another library set
// certmagic.DefaultACME.Resolver); and the lease asked of a
// LockLeaseRenewer adds DefaultACME.CertObtainTimeout, which certfleet's
// backends never let shorten a lease.
func newCertmagic(s settings, store certmagic.Storage, solver acmez.Solver, onEvent func(context.Context, string, map[string]any) error, onACME func(url, status, retryAfter string), onRequest func(*http.Request) error) (*certmagic.Cache, *certmagic.Config, error) {
	var systemRoots *x509.CertPool
	for _, ca := range s.cas {
		if ca.Roots == nil && systemRoots == nil {
			pool, err := x509.SystemCertPool()
			if err != nil {
				return nil, nil, fmt.Errorf("CARoots: not set, and the system roots cannot be read (%w): set CARoots", err)
			}
			systemRoots = pool
		}
	}
	// Only the ACME issuers' logger lets debug entries through to count the
	// ACME client's requests: the cache's and config's loggers would
	// otherwise build an entry for every debug line of every maintenance
	// pass.
	zlog := newZapLogger(s.logger, nil)
	acmeLog := newZapLogger(s.logger, onACME)
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: s.checkInterval,
		OCSPCheckInterval:  certmagic.DefaultOCSPCheckInterval,
		Capacity:           0, // no limit: every managed certificate stays cached
		Logger:             zlog.Named("cache"),
	})
	template := certmagic.Config{
		RenewalWindowRatio: s.renewalRatio,
		OnEvent:            onEvent,
		ShouldEmitFunc:     func(e string) bool { return e == "cert_obtaining" || e == "cert_obtained" || e == "cert_failed" },
		OnDemand:           nil, // certificates only for the configured names
		KeySource:          certmagic.StandardKeyGenerator{KeyType: s.keyType},
		Storage:            store,
		Logger:             zlog,
		Issuers:            []certmagic.Issuer{}, // not nil: New would build one from DefaultACME
	}
	magic = certmagic.New(cache, template)
	// Undo what New inherited from certmagic.Default for fields we leave zero.
	magic.OnDemand = nil
	magic.MustStaple = false
	magic.DefaultServerName, magic.FallbackServerName = "", ""
	magic.LocalCache = nil

	// One issuer per CA, in order: certmagic tries the next when one fails
	// an attempt, and the first again at the next attempt (a renewal goes
	// back to a CA that recovered).
	magic.Issuers = make([]certmagic.Issuer, 0, len(s.cas))
	for _, ca := range s.cas {
		magic.Issuers = append(magic.Issuers, newIssuer(magic, s, ca, cmp.Or(ca.Roots, systemRoots), solver, acmeLog, onRequest))
	}
	return cache, magic, nil
}

// newIssuer builds the ACME issuer of one CA, then overwrites what
// NewACMEIssuer inherited from certmagic.DefaultACME.
func newIssuer(magic *certmagic.Config, s settings, ca CA, roots *x509.CertPool, solver acmez.Solver, log *zap.Logger, onRequest func(*http.Request) error) *certmagic.ACMEIssuer {
	// Every request to the CA passes here before it is sent (certmagic's
	// only per-request hook): a new order is held back at the last moment
	// while the fleet's back-off with the CA is in force.
	proxy := func(req *http.Request) (*url.URL, error) {
		if err := onRequest(req); err != nil {
			return nil, err
		}
		return http.ProxyFromEnvironment(req)
	}
	var eab *acme.EAB
	if ca.EAB != nil {
		eab = &acme.EAB{KeyID: ca.EAB.KeyID, MACKey: ca.EAB.MACKey}
	}
	iss := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:                      ca.URL,
		Email:                   s.email,
		Agreed:                  true,
		ExternalAccount:         eab,
		Profile:                 ca.Profile,
		DisableHTTPChallenge:    true,
		DisableTLSALPNChallenge: true,
		DNS01Solver:             solver,
		TrustedRoots:            roots,
		Resolver:                acmeResolver(),
		CertObtainTimeout:       certObtainTimeout,
		HTTPProxy:               proxy,
		Logger:                  log.Named("acme"),
	})
	iss.TestCA = ""
	if s.stagingRetries && ca.URL == LetsEncrypt {
		iss.TestCA = LetsEncryptStaging
	}
	iss.Email, iss.Agreed, iss.ExternalAccount = s.email, true, eab
	iss.AccountKeyPEM = ""
	iss.NotBefore, iss.NotAfter = 0, 0
	iss.DNS01Solver = solver
	iss.CertObtainTimeout = certObtainTimeout
	iss.NewAccountFunc = nil
	iss.PreferredChains = certmagic.ChainPreference{}
	return iss
}

// certObtainTimeout bounds the ACME client's polling of an order (the
// ACME client's own default, set so that certmagic.DefaultACME's value
// does not apply).
const certObtainTimeout = 5 * time.Minute

// acmeResolver is the DNS server through which the ACME server's host name
// is resolved: "" (the system's resolver, as any Go program) unless another
// library set certmagic.DefaultACME.Resolver, which certmagic would apply
// to every issuer; then the system's first nameserver is named explicitly.
func acmeResolver() string {
	if certmagic.DefaultACME.Resolver == "" {
		return ""
	}
	if cc, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil && len(cc.Servers) > 0 {
		return net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	return "127.0.0.1:53"
}
