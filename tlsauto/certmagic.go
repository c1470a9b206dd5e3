package tlsauto

import (
	"context"
	"net/http"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// newCertmagic builds the certmagic Cache and Config of one Manager. It sets
// every field itself and then overwrites whatever certmagic's constructors
// copied from its package globals (Default, DefaultACME), so that nothing
// another library in the process configured can leak into this Manager.
func newCertmagic(c Config, s settings, store certmagic.Storage, onEvent func(context.Context, string, map[string]any) error) (*certmagic.Cache, *certmagic.Config) {
	zlog := newZapLogger(s.logger)
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
		ShouldEmitFunc:     func(e string) bool { return e == "cert_obtained" || e == "cert_failed" },
		OnDemand:           nil, // certificates only for the configured names
		KeySource:          certmagic.StandardKeyGenerator{KeyType: s.keyType},
		Storage:            store,
		Logger:             zlog,
	}
	magic = certmagic.New(cache, template)
	// Undo what New inherited from certmagic.Default for fields we leave zero.
	magic.OnDemand = nil
	magic.MustStaple = false
	magic.DefaultServerName, magic.FallbackServerName = "", ""
	magic.LocalCache = nil

	solver := &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
		DNSProvider:        c.DNS,
		Resolvers:          s.resolvers,
		PropagationTimeout: s.propagationTTL,
		Logger:             zlog.Named("dns01"),
	}}
	var eab *acme.EAB
	if c.EAB != nil {
		eab = &acme.EAB{KeyID: c.EAB.KeyID, MACKey: c.EAB.MACKey}
	}
	iss := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:                      s.ca,
		Email:                   s.email,
		Agreed:                  true,
		ExternalAccount:         eab,
		Profile:                 c.Profile,
		DisableHTTPChallenge:    true,
		DisableTLSALPNChallenge: true,
		DNS01Solver:             solver,
		TrustedRoots:            c.CARoots,
		HTTPProxy:               http.ProxyFromEnvironment,
		Logger:                  zlog.Named("acme"),
	})
	// Undo what NewACMEIssuer inherited from certmagic.DefaultACME.
	iss.TestCA = ""
	if c.StagingRetries && s.ca == LetsEncrypt {
		iss.TestCA = LetsEncryptStaging
	}
	iss.Email, iss.Agreed, iss.ExternalAccount = s.email, true, eab
	iss.AccountKeyPEM = ""
	iss.NotBefore, iss.NotAfter = 0, 0
	iss.DNS01Solver = solver
	iss.CertObtainTimeout = 0
	iss.Resolver = ""
	iss.NewAccountFunc = nil
	iss.PreferredChains = certmagic.ChainPreference{}
	magic.Issuers = []certmagic.Issuer{iss}
	return cache, magic
}
