package googleclouddns

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi"
	"github.com/certfleet/certfleet/internal/backoff"
)

// signer holds the service account's private key, behind a pointer so
// that printing a copy of a Provider by reflection shows an address at
// most.
type signer struct {
	key   *rsa.PrivateKey
	keyID string
}

// assertion returns the signed JWT that the token endpoint exchanges for
// an access token (RFC 7523, as Google's service-account flow uses it).
func (p *Provider) assertion(now time.Time) (string, error) {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": p.signer.keyID})
	claims, _ := json.Marshal(map[string]any{
		"iss": p.email, "scope": scope, "aud": p.tokenURI,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.signer.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("signing the token request with the service-account key: %w", err)
	}
	return signed + "." + enc.EncodeToString(sig), nil
}

// fetchToken exchanges a signed assertion for an access token.
func (p *Provider) fetchToken(ctx context.Context) (cloudapi.Token, error) {
	now := time.Now()
	jwt, err := p.assertion(now)
	if err != nil {
		return cloudapi.Token{}, err
	}
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jwt}}
	if err := p.api.PostForm(ctx, p.tokenURI, form, &out); err != nil {
		if strings.Contains(err.Error(), "invalid_grant") {
			err = fmt.Errorf("%w; check that the key of %s still exists and is enabled (IAM, Service accounts, Keys) and that this machine's clock is right", err, p.email)
		}
		return cloudapi.Token{}, err
	}
	if out.AccessToken == "" {
		return cloudapi.Token{}, fmt.Errorf("the token endpoint %s answered without an access token", p.tokenURI)
	}
	if out.ExpiresIn <= 0 {
		out.ExpiresIn = 3600
	}
	return cloudapi.Token{Value: out.AccessToken, Expires: now.Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
}

// parseError reads Google's JSON error answer.
func parseError(body []byte, se *dnsprovider.StatusError) {
	var env struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil {
		return
	}
	se.Code, se.Message = env.Error.Status, env.Error.Message
	if len(env.Error.Errors) > 0 && env.Error.Errors[0].Reason != "" {
		se.Code = env.Error.Errors[0].Reason
	}
}

// managedZone is a Cloud DNS managed zone.
type managedZone struct {
	Name       string `json:"name"`
	DNSName    string `json:"dnsName"`
	Visibility string `json:"visibility"`
}

// rrset is a Cloud DNS resource record set.
type rrset struct {
	Kind    string   `json:"kind,omitempty"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	TTL     int64    `json:"ttl"`
	Rrdatas []string `json:"rrdatas"`
}

// change is a Cloud DNS change: applied atomically, refused whole.
type change struct {
	Kind      string  `json:"kind,omitempty"`
	Additions []rrset `json:"additions,omitempty"`
	Deletions []rrset `json:"deletions,omitempty"`
	ID        string  `json:"id,omitempty"`
	Status    string  `json:"status,omitempty"`
}

// listPage is one page of a list answer.
type listPage struct {
	ManagedZones  []managedZone `json:"managedZones"`
	Rrsets        []rrset       `json:"rrsets"`
	NextPageToken string        `json:"nextPageToken"`
}

// maxPages bounds a listing, against an API that never stops paging.
const maxPages = 10000

// list reads every page of a list request under the project.
func (p *Provider) list(ctx context.Context, path string, q url.Values, each func(*listPage)) error {
	if q == nil {
		q = url.Values{}
	}
	for range maxPages {
		var page listPage
		if _, err := p.api.Do(ctx, http.MethodGet, p.endpoint(path, q), nil, nil, &page); err != nil {
			return err
		}
		each(&page)
		if page.NextPageToken == "" {
			return nil
		}
		q.Set("pageToken", page.NextPageToken)
	}
	return fmt.Errorf("listing %s: more than %d pages", path, maxPages)
}

func (p *Provider) endpoint(path string, q url.Values) string {
	u := apiBase + url.PathEscape(p.project) + "/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// zoneEntry caches a managed zone's name.
type zoneEntry struct {
	name string
	at   time.Time
}

// zoneTTL is how long a managed zone's name is reused without a lookup.
const zoneTTL = 5 * time.Minute

// fqdn returns name in lower case with one trailing dot.
func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

// managedZone returns the name of the public managed zone for zone.
func (p *Provider) managedZone(ctx context.Context, zone string) (string, error) {
	dnsName := fqdn(zone)
	p.zones.mu.Lock()
	e, ok := p.zones.m[dnsName]
	p.zones.mu.Unlock()
	if ok && time.Since(e.at) < zoneTTL {
		return e.name, nil
	}
	var public, private []string
	err := p.list(ctx, "managedZones", url.Values{"dnsName": {dnsName}}, func(page *listPage) {
		for _, z := range page.ManagedZones {
			if fqdn(z.DNSName) != dnsName {
				continue
			}
			if z.Visibility == "" || z.Visibility == "public" {
				public = append(public, z.Name)
			} else {
				private = append(private, z.Name)
			}
		}
	})
	switch {
	case err != nil:
		return "", err
	case len(public) == 1:
	case len(public) > 1:
		return "", fmt.Errorf("several public managed zones for %q in project %q (%s)", dnsName, p.project, strings.Join(public, ", "))
	case len(private) > 0:
		return "", fmt.Errorf("project %q has only private managed zones for %q (%s): the CA needs a public zone", p.project, dnsName, strings.Join(private, ", "))
	default:
		return "", fmt.Errorf("no managed zone for %q in project %q (or the service account %s cannot list zones): check %s", dnsName, p.project, p.email, EnvProject)
	}
	p.zones.mu.Lock()
	p.zones.m[dnsName] = zoneEntry{name: public[0], at: time.Now()}
	p.zones.mu.Unlock()
	return public[0], nil
}

// get returns the record set (name, typ) of the managed zone, nil if none.
func (p *Provider) get(ctx context.Context, mz, name, typ string) (*rrset, error) {
	var found *rrset
	err := p.list(ctx, "managedZones/"+url.PathEscape(mz)+"/rrsets", url.Values{"name": {name}, "type": {typ}}, func(page *listPage) {
		for _, rs := range page.Rrsets {
			if fqdn(rs.Name) == name && rs.Type == typ {
				found = &rs
			}
		}
	})
	return found, err
}

// conflictRetries bounds the reads and changes of one record set update
// that other writers keep overtaking.
const conflictRetries = 8

var conflictBackoff = backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}

// update changes one record set: it reads it, edit computes the new one
// (nil or no data: none), and one change replaces the old set with the new.
// The change names the old set exactly, so Cloud DNS refuses it (412 or
// 409) if another writer changed the set in between; update then reads it
// again. edit returns false when nothing needs changing.
func (p *Provider) update(ctx context.Context, mz, name, typ string, edit func(cur *rrset) (*rrset, bool)) error {
	for attempt := 1; ; attempt++ {
		cur, err := p.get(ctx, mz, name, typ)
		if err != nil {
			return err
		}
		next, changed := edit(cur)
		if !changed {
			return nil
		}
		var ch change
		if cur != nil {
			ch.Deletions = []rrset{*cur}
		}
		if next != nil && len(next.Rrdatas) > 0 {
			ch.Additions = []rrset{*next}
		}
		_, err = p.api.Do(ctx, http.MethodPost, p.endpoint("managedZones/"+url.PathEscape(mz)+"/changes", nil), nil, ch, &change{})
		st := cloudapi.Status(err)
		if err == nil || (st != http.StatusConflict && st != http.StatusPreconditionFailed) || attempt == conflictRetries {
			return err
		}
		if err := backoff.Sleep(ctx, conflictBackoff.Delay(attempt)); err != nil {
			return err
		}
	}
}
