package tlsauto

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/internal/quarantine"
)

// Stored data that cannot be used is not retried forever: it is moved
// aside, under certfleet/quarantine/<time>/<its key>, with a note saying
// why, and obtained anew. Nothing is deleted before its copy is stored, and
// the fleet's issuance lock for the name makes one member heal it while the
// others wait and then load what that member obtained.

// heal looks at what storage holds for name after a failed attempt and
// quarantines what cannot be used: the certificate resource (certificate,
// key, metadata) or the ACME account. It reports whether it moved
// anything, so that the next attempt can follow at once.
func (m *Manager) heal(ctx context.Context, name string) bool {
	healed := false
	for _, issuer := range m.issuerKeys() {
		checkAccount := func(ctx context.Context) ([]string, string) { return m.inspectAccount(ctx, issuer) }
		if _, reason := checkAccount(ctx); reason != "" {
			lock := "register_acme_account_" + m.s.email
			healed = m.quarantineUnder(ctx, lock, name, checkAccount) || healed
		}
		checkCert := func(ctx context.Context) ([]string, string) { return m.inspectCert(ctx, issuer, name) }
		if _, reason := checkCert(ctx); reason != "" {
			if m.quarantineUnder(ctx, "issue_cert_"+name, name, checkCert) {
				// certmagic must not keep managing what was moved aside.
				m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: name, IssuerKey: issuer}})
				healed = true
			}
		}
	}
	return healed
}

// quarantineUnder takes the storage lock, checks again (another member
// may have healed it meanwhile) and quarantines what check finds unusable.
func (m *Manager) quarantineUnder(ctx context.Context, lock, name string, check func(context.Context) ([]string, string)) bool {
	if err := m.storage.Lock(ctx, lock); err != nil {
		m.log.Warn("cannot lock to quarantine unusable stored data", "name", name, "lock", lock, "error", err)
		return false
	}
	defer func() {
		if err := m.storage.Unlock(context.WithoutCancel(ctx), lock); err != nil {
			m.log.Warn("releasing a lock", "lock", lock, "error", err)
		}
	}()
	keys, reason := check(ctx)
	if reason == "" {
		return true // healed by another member: try again now
	}
	if err := m.quarantine(ctx, name, keys, reason); err != nil {
		m.log.Warn("cannot quarantine unusable stored data; will retry", "name", name, "reason", reason, "error", err)
		return false
	}
	return true
}

// quarantine copies keys, as stored (still encrypted, if the storage
// encrypts), under a new quarantine key with a note, then deletes them.
func (m *Manager) quarantine(ctx context.Context, name string, keys []string, reason string) error {
	dir, moved, err := quarantine.Move(ctx, m.storage, name, reason, keys)
	if err != nil {
		return err
	}
	m.log.Warn("moved unusable stored data aside; obtaining it anew", "name", name, "reason", reason, "quarantine", dir, "keys", moved)
	m.emitEvent(Event{Kind: Quarantined, Name: name, Err: errors.New(reason), Time: time.Now()})
	return nil
}

// unusable reports whether a Load error means the stored value itself is
// bad (it does not decrypt), as opposed to missing or unreachable.
func unusable(err error) bool { return errors.Is(err, quarantine.ErrCorrupt) }

// inspectCert returns the keys of name's certificate resource (as stored
// for the CA whose issuer key is issuer) and why it
// cannot be used, or "" when it is usable, missing or cannot be read now
// (an outage is no reason to move anything).
func (m *Manager) inspectCert(ctx context.Context, issuer, name string) ([]string, string) {
	certKey := certmagic.StorageKeys.SiteCert(issuer, name)
	keyKey := certmagic.StorageKeys.SitePrivateKey(issuer, name)
	metaKey := certmagic.StorageKeys.SiteMeta(issuer, name)
	keys := []string{certKey, keyKey, metaKey}
	load := func(k string) ([]byte, string, bool) {
		v, err := m.storage.Load(ctx, k)
		switch {
		case err == nil:
			return v, "", true
		case unusable(err):
			return nil, fmt.Sprintf("%s: %v", k, err), false
		default:
			return nil, "", false
		}
	}
	certPEM, why, ok := load(certKey)
	if !ok {
		return keys, why
	}
	keyPEM, why, ok := load(keyKey)
	if !ok {
		return keys, why
	}
	if meta, why, ok := load(metaKey); ok && !json.Valid(meta) {
		return keys, metaKey + ": not valid JSON"
	} else if why != "" {
		return keys, why
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return keys, fmt.Sprintf("the stored certificate and key cannot be used together: %v", err)
	}
	if err := m.verify(name, &cert, time.Now()); err != nil && !errors.Is(err, errExpired) {
		return keys, err.Error()
	}
	return keys, ""
}

// inspectAccount returns the keys of the ACME account at the CA whose
// issuer key is issuer and why it cannot be
// used, or "" when it is usable, missing or cannot be read now.
func (m *Manager) inspectAccount(ctx context.Context, issuer string) ([]string, string) {
	keyKey, regKey := accountKeys(issuer, m.s.email)
	keys := []string{keyKey, regKey}
	if v, err := m.storage.Load(ctx, keyKey); err == nil {
		if b, _ := pem.Decode(v); b == nil {
			return keys, keyKey + ": no PEM private key"
		} else if _, err := parsePrivateKey(b.Bytes); err != nil {
			return keys, fmt.Sprintf("%s: %v", keyKey, err)
		}
	} else if unusable(err) {
		return keys, fmt.Sprintf("%s: %v", keyKey, err)
	}
	if v, err := m.storage.Load(ctx, regKey); err == nil {
		if !json.Valid(v) {
			return keys, regKey + ": not valid JSON"
		}
	} else if unusable(err) {
		return keys, fmt.Sprintf("%s: %v", regKey, err)
	}
	return keys, ""
}

// parsePrivateKey parses a DER private key in the forms certmagic stores.
func parsePrivateKey(der []byte) (crypto.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, EC or PKCS#1 private key")
}

// accountKeys returns the storage keys of the ACME account key and
// registration of email at the CA whose issuer key is issuer, laid out as
// certmagic stores them (acme/<CA>/users/<email>/<user>.key and .json);
// certmagic does not export this layout.
func accountKeys(issuer, email string) (key, reg string) {
	email = strings.ToLower(email)
	user := email[:max(strings.IndexByte(email, '@'), 0)]
	if user == "" {
		user = email
	}
	dir := path.Join("acme", certmagic.StorageKeys.Safe(issuer), "users", certmagic.StorageKeys.Safe(email))
	return path.Join(dir, certmagic.StorageKeys.Safe(user)+".key"), path.Join(dir, certmagic.StorageKeys.Safe(user)+".json")
}
