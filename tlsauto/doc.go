// Package tlsauto gives a Go server automatic TLS: it obtains certificates
// for the server's names from an ACME CA over DNS-01, serves them, and
// renews them in the background, keeping them in storage that a whole fleet
// of servers may share.
//
// The one-liner takes every setting from CERTFLEET_* environment variables:
//
//	ln, err := tlsauto.Listen(":443", "example.com", "*.example.com")
//	if err != nil {
//		return err
//	}
//	return http.Serve(ln, handler)
//
// A Manager gives full control:
//
//	m, err := tlsauto.New(tlsauto.Config{
//		Domains: []string{"example.com", "*.example.com"},
//		Email:   "ops@example.com",
//		DNS:     provider, // any libdns provider, e.g. from dnsprovider.FromEnv
//	})
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	if err := m.Start(ctx); err != nil { // every certificate ready
//		return err
//	}
//	srv := &http.Server{Addr: ":443", Handler: handler, TLSConfig: m.TLSConfig()}
//	return srv.ListenAndServeTLS("", "")
//
// Each Manager owns its certmagic cache and configuration; none of
// certmagic's package-level defaults are used or changed.
package tlsauto
