package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certfleet/certfleet/dnsprovider"
	"github.com/certfleet/certfleet/dnsprovider/internal/cloudapi"
	"github.com/certfleet/certfleet/internal/backoff"
)

// apiVersion is the Azure DNS API version spoken.
const apiVersion = "2018-05-01"

// fetchToken obtains an access token for Azure Resource Manager with the
// client credentials grant.
func (p *Provider) fetchToken(ctx context.Context) (cloudapi.Token, error) {
	now := time.Now()
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {p.cfg.ClientID},
		"client_secret": {p.cfg.ClientSecret},
		"scope":         {"https://" + p.cloud.management + "/.default"},
	}
	tokenURL := "https://" + p.cloud.login + "/" + url.PathEscape(p.cfg.TenantID) + "/oauth2/v2.0/token"
	if err := p.api.PostForm(ctx, tokenURL, form, &out); err != nil {
		return cloudapi.Token{}, err
	}
	if out.AccessToken == "" {
		return cloudapi.Token{}, fmt.Errorf("the token endpoint %s answered without an access token", p.cloud.login)
	}
	if out.ExpiresIn <= 0 {
		out.ExpiresIn = 3600
	}
	return cloudapi.Token{Value: out.AccessToken, Expires: now.Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
}

// parseError reads Azure's error answers: {"error": {"code", "message"}}
// from Resource Manager, {"code", "message"} from the DNS service.
func parseError(body []byte, se *dnsprovider.StatusError) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	var env struct {
		detail
		Error *detail `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil {
		return
	}
	d := env.detail
	if env.Error != nil {
		d = *env.Error
	}
	se.Code, se.Message = d.Code, d.Message
}

// recordSet is an Azure DNS record set.
type recordSet struct {
	Name       string     `json:"name,omitempty"`
	Type       string     `json:"type,omitempty"`
	Etag       string     `json:"etag,omitempty"`
	Properties properties `json:"properties"`
}

type properties struct {
	TTL        int64  `json:"TTL"`
	Fqdn       string `json:"fqdn,omitempty"`
	TXTRecords []txt  `json:"TXTRecords,omitempty"`
	ARecords   []struct {
		IPv4Address string `json:"ipv4Address"`
	} `json:"ARecords,omitempty"`
	AAAARecords []struct {
		IPv6Address string `json:"ipv6Address"`
	} `json:"AAAARecords,omitempty"`
	CNAMERecord *struct {
		Cname string `json:"cname"`
	} `json:"CNAMERecord,omitempty"`
	MXRecords []struct {
		Preference int    `json:"preference"`
		Exchange   string `json:"exchange"`
	} `json:"MXRecords,omitempty"`
	NSRecords []struct {
		Nsdname string `json:"nsdname"`
	} `json:"NSRecords,omitempty"`
	PTRRecords []struct {
		Ptrdname string `json:"ptrdname"`
	} `json:"PTRRecords,omitempty"`
	SRVRecords []struct {
		Priority int    `json:"priority"`
		Weight   int    `json:"weight"`
		Port     int    `json:"port"`
		Target   string `json:"target"`
	} `json:"SRVRecords,omitempty"`
	CAARecords []struct {
		Flags int    `json:"flags"`
		Tag   string `json:"tag"`
		Value string `json:"value"`
	} `json:"caaRecords,omitempty"`
	SOARecord *struct {
		Host         string `json:"host"`
		Email        string `json:"email"`
		SerialNumber int64  `json:"serialNumber"`
		RefreshTime  int64  `json:"refreshTime"`
		RetryTime    int64  `json:"retryTime"`
		ExpireTime   int64  `json:"expireTime"`
		MinimumTTL   int64  `json:"minimumTTL"`
	} `json:"SOARecord,omitempty"`
}

// txt is one TXT record: its text in strings of at most 255 bytes.
type txt struct {
	Value []string `json:"value"`
}

// texts returns the TXT values of a record set (none for nil).
func texts(rs *recordSet) []string {
	if rs == nil {
		return nil
	}
	var out []string
	for _, t := range rs.Properties.TXTRecords {
		out = append(out, strings.Join(t.Value, ""))
	}
	return out
}

// txtRecords returns values as Azure TXT records.
func txtRecords(values []string) []txt {
	out := make([]txt, 0, len(values))
	for _, v := range values {
		var chunks []string
		for first := true; first || v != ""; first = false {
			n := min(len(v), 255)
			chunks = append(chunks, v[:n])
			v = v[n:]
		}
		out = append(out, txt{Value: chunks})
	}
	return out
}

// zoneURL returns the URL of the zone (no trailing dot) or of the zones.
func (p *Provider) zoneURL(zone string) string {
	u := "https://" + p.cloud.management + "/subscriptions/" + url.PathEscape(p.cfg.SubscriptionID) +
		"/resourceGroups/" + url.PathEscape(p.cfg.ResourceGroup) + "/providers/Microsoft.Network/dnsZones"
	if zone != "" {
		u += "/" + url.PathEscape(zoneName(zone))
	}
	return u
}

func (p *Provider) txtURL(zone, rel string) string {
	return p.zoneURL(zone) + "/TXT/" + url.PathEscape(rel) + "?api-version=" + apiVersion
}

// zoneName returns zone as Azure names zones: lower case, no trailing dot.
func zoneName(zone string) string {
	return strings.ToLower(strings.TrimSuffix(zone, "."))
}

// missingParent reports whether a 404 code means that the zone, resource
// group or subscription is missing, rather than the record set.
func missingParent(err error, zone string, p *Provider) error {
	var se *dnsprovider.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || se.Code == "NotFound" {
		return err
	}
	return fmt.Errorf("zone %q is not in resource group %q of subscription %s, or the service principal cannot see it (check %s and %s): %w",
		zoneName(zone), p.cfg.ResourceGroup, p.cfg.SubscriptionID, EnvResourceGroup, EnvSubscriptionID, err)
}

// get returns the TXT record set rel of zone, nil if there is none.
func (p *Provider) get(ctx context.Context, zone, rel string) (*recordSet, error) {
	var rs recordSet
	_, err := p.api.Do(ctx, http.MethodGet, p.txtURL(zone, rel), nil, nil, &rs)
	if err != nil {
		var se *dnsprovider.StatusError
		if errors.As(err, &se) && se.StatusCode == http.StatusNotFound && se.Code == "NotFound" {
			return nil, nil
		}
		return nil, missingParent(err, zone, p)
	}
	return &rs, nil
}

// conflictRetries bounds the reads and writes of one record set update
// that other writers keep overtaking.
const conflictRetries = 8

var conflictBackoff = backoff.Policy{Base: 50 * time.Millisecond, Max: time.Second}

// update changes the TXT record set rel of zone: it reads the set, edit
// computes the new values (none: delete the set), and a write conditional on
// the set's ETag (or on its absence) stores them. When another writer
// changed the set in between, Azure refuses the write (412) and update
// reads it again. edit returns false when nothing needs changing.
func (p *Provider) update(ctx context.Context, zone, rel string, ttl int64, edit func(cur []string) ([]string, bool)) error {
	for attempt := 1; ; attempt++ {
		cur, err := p.get(ctx, zone, rel)
		if err != nil {
			return err
		}
		next, changed := edit(texts(cur))
		if !changed {
			return nil
		}
		header := http.Header{}
		switch {
		case cur == nil:
			header.Set("If-None-Match", "*")
		case cur.Etag != "":
			header.Set("If-Match", cur.Etag)
		}
		if cur != nil && cur.Properties.TTL > 0 {
			ttl = cur.Properties.TTL
		}
		if len(next) == 0 {
			_, err = p.api.Do(ctx, http.MethodDelete, p.txtURL(zone, rel), header, nil, nil)
		} else {
			body := recordSet{Properties: properties{TTL: ttl, TXTRecords: txtRecords(next)}}
			_, err = p.api.Do(ctx, http.MethodPut, p.txtURL(zone, rel), header, body, &recordSet{})
		}
		st := cloudapi.Status(err)
		if err == nil || (st != http.StatusPreconditionFailed && st != http.StatusConflict) || attempt == conflictRetries {
			return missingParent(err, zone, p)
		}
		if err := backoff.Sleep(ctx, conflictBackoff.Delay(attempt)); err != nil {
			return err
		}
	}
}

// listPage is one page of a list answer.
type listPage[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink"`
}

// maxPages bounds a listing, against an API that never stops paging.
const maxPages = 10000

// list reads every page of a list request, following nextLink only to the
// Resource Manager host.
func list[T any](ctx context.Context, p *Provider, rawURL string, each func(T)) error {
	for range maxPages {
		var page listPage[T]
		if _, err := p.api.Do(ctx, http.MethodGet, rawURL, nil, nil, &page); err != nil {
			return err
		}
		for _, v := range page.Value {
			each(v)
		}
		if page.NextLink == "" {
			return nil
		}
		if !cloudapi.SameHost(page.NextLink, p.cloud.management) {
			return fmt.Errorf("the API's next page link leads away from %s: not followed", p.cloud.management)
		}
		rawURL = page.NextLink
	}
	return fmt.Errorf("listing: more than %d pages", maxPages)
}
