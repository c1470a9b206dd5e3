package apifake

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// Hosts of Azure's real public-cloud endpoints; the fake's Client sends
// requests for them to the fake.
const (
	AzureLoginHost      = "login.microsoftonline.com"
	AzureManagementHost = "management.azure.com"
)

// AzureCredentials are the service principal and the place of the zones
// that the Azure fake accepts.
type AzureCredentials struct {
	TenantID, ClientID, ClientSecret string
	SubscriptionID, ResourceGroup    string
}

// Azure is a fake of the Azure DNS REST API (Azure Resource Manager,
// Microsoft.Network/dnsZones) backed by a Backend, with the Microsoft
// identity platform's token endpoint: zones list, record sets list (all
// types), and GET, PUT and DELETE of TXT record sets with ETags, If-Match
// and If-None-Match (412 PreconditionFailed as Azure answers). The token
// endpoint accepts only the client credentials grant with the configured
// tenant, client id and secret, for the Resource Manager scope, and issues
// access tokens that the API then requires. Every zone of the backend is a
// zone of the configured subscription and resource group. Lists page at
// 100 items, or at SetPageSize.
//
// Injected throttling answers are HTTP 429 TooManyRequests with a
// Retry-After header; injected server errors are 500 InternalServerError,
// 502 (an HTML page), 503 ServiceUnavailable and connections closed without
// an answer.
type Azure struct {
	server
	backend Backend
	creds   AzureCredentials

	cfgMu  sync.Mutex
	tokens map[string]time.Time
}

// NewAzure starts a fake Azure DNS API over backend that accepts creds.
// Close it when done.
func NewAzure(backend Backend, creds AzureCredentials) *Azure {
	f := &Azure{backend: backend, creds: creds, tokens: make(map[string]time.Time)}
	zones := "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/dnsZones"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", f.token)
	mux.HandleFunc("GET "+zones, f.authorized(f.listZones))
	mux.HandleFunc("GET "+zones+"/{zone}/recordsets", f.authorized(f.listRecordSets))
	mux.HandleFunc("GET "+zones+"/{zone}/{type}/{name}", f.authorized(f.getRecordSet))
	mux.HandleFunc("PUT "+zones+"/{zone}/{type}/{name}", f.authorized(f.putRecordSet))
	mux.HandleFunc("DELETE "+zones+"/{zone}/{type}/{name}", f.authorized(f.deleteRecordSet))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		azFail(w, http.StatusNotFound, "InvalidResourceType", "no route for "+r.Method+" "+r.URL.Path)
	})
	f.start(mux, f.injectFault)
	return f
}

// FailNext makes the next n requests fail with the given HTTP status and
// a matching Azure error (429 carries Retry-After).
func (f *Azure) FailNext(n, status int) {
	f.failNext(n, forcedFault{status: status})
}

// Transport returns an http.RoundTripper that sends requests for
// login.microsoftonline.com and management.azure.com to the fake and refuses
// every other host.
func (f *Azure) Transport() http.RoundTripper {
	return f.redirect(AzureLoginHost, AzureManagementHost)
}

// Client returns an http.Client using Transport.
func (f *Azure) Client() *http.Client {
	return client(f.Transport())
}

func (f *Azure) injectFault(w http.ResponseWriter, _ *http.Request, kind int, forced forcedFault) {
	switch {
	case kind == -1 && forced.status == http.StatusTooManyRequests, kind == faultThrottle:
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfterSeconds()))
		azFail(w, http.StatusTooManyRequests, "TooManyRequests", "The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:05:00.")
	case kind == -1:
		azFail(w, forced.status, strings.ReplaceAll(http.StatusText(forced.status), " ", ""), http.StatusText(forced.status))
	case kind == faultServerError:
		azFail(w, http.StatusInternalServerError, "InternalServerError", "Encountered internal server error. Please try again.")
	case kind == faultBadGateway:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<html><body><h1>502 Bad Gateway</h1></body></html>")
	case kind == faultUnavailable:
		azFail(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable.")
	default:
		hangUp(w)
	}
}

func azWrite(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Ms-Request-Id", requestID())
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// azFail answers with Resource Manager's error format.
func azFail(w http.ResponseWriter, status int, code, msg string) {
	azWrite(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// azDNSFail answers with the DNS service's error format (no "error" wrapper).
func azDNSFail(w http.ResponseWriter, status int, code, msg string) {
	azWrite(w, status, map[string]string{"code": code, "message": msg})
}

// token serves the Microsoft identity platform's v2.0 token endpoint:
// client credentials grant with a client secret only.
func (f *Azure) token(w http.ResponseWriter, r *http.Request) {
	f.countOp("Token")
	_ = r.ParseForm()
	form := r.PostForm
	fail := func(status int, code, desc string) {
		f.countRejected()
		gWrite(w, status, map[string]any{"error": code, "error_description": desc + "\r\nTrace ID: 0000 Correlation ID: 0000 Timestamp: " + time.Now().UTC().Format(time.DateTime) + "Z", "error_codes": []int{}})
	}
	switch {
	case r.PathValue("tenant") != f.creds.TenantID:
		fail(http.StatusBadRequest, "invalid_request", fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", r.PathValue("tenant")))
	case form.Get("grant_type") != "client_credentials":
		fail(http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
	case form.Get("client_id") != f.creds.ClientID:
		fail(http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory.", form.Get("client_id")))
	case form.Get("client_secret") != f.creds.ClientSecret:
		fail(http.StatusUnauthorized, "invalid_client", fmt.Sprintf("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", f.creds.ClientID))
	case form.Get("scope") != "https://"+AzureManagementHost+"/.default":
		fail(http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
	default:
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		tok := "eyJ0eXAiOiJKV1QifQ.fake-" + hex.EncodeToString(b)
		f.cfgMu.Lock()
		f.tokens[tok] = time.Now().Add(time.Hour)
		f.cfgMu.Unlock()
		gWrite(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})
	}
}

// authorized checks the bearer token, the subscription and the resource
// group before h.
func (f *Azure) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.cfgMu.Lock()
		exp, known := f.tokens[tok]
		f.cfgMu.Unlock()
		switch {
		case !ok || tok == "":
			f.countRejected()
			azFail(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
		case !known || time.Now().After(exp):
			f.countRejected()
			azFail(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid.")
		case !strings.EqualFold(r.PathValue("sub"), f.creds.SubscriptionID):
			f.countRejected()
			azFail(w, http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf("The client '%s' does not have authorization to perform action 'Microsoft.Network/dnsZones/read' over scope '/subscriptions/%s'.", f.creds.ClientID, r.PathValue("sub")))
		case !strings.EqualFold(r.PathValue("rg"), f.creds.ResourceGroup):
			azFail(w, http.StatusNotFound, "ResourceGroupNotFound", fmt.Sprintf("Resource group '%s' could not be found.", r.PathValue("rg")))
		case r.URL.Query().Get("api-version") == "":
			azFail(w, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		default:
			h(w, r)
		}
	}
}

func (f *Azure) zonesPath() string {
	return "/subscriptions/" + f.creds.SubscriptionID + "/resourceGroups/" + f.creds.ResourceGroup + "/providers/Microsoft.Network/dnsZones"
}

// nextLink returns the link to the page after next, on the real host.
func nextLink(r *http.Request, next string) string {
	if next == "" {
		return ""
	}
	q := r.URL.Query()
	q.Set("$skipToken", next)
	return (&url.URL{Scheme: "https", Host: AzureManagementHost, Path: r.URL.Path, RawQuery: q.Encode()}).String()
}

func (f *Azure) listZones(w http.ResponseWriter, r *http.Request) {
	f.countOp("ZonesList")
	ctx, cancel := backendCtx(r)
	defer cancel()
	zs, err := f.backend.ListZones(ctx)
	if err != nil {
		azFail(w, http.StatusInternalServerError, "InternalServerError", "backend: "+err.Error())
		return
	}
	var out []map[string]any
	for _, z := range zs {
		name := strings.TrimSuffix(fqdn(z.Name), ".")
		out = append(out, map[string]any{
			"id": f.zonesPath() + "/" + name, "name": name, "type": "Microsoft.Network/dnszones", "location": "global",
			"etag": etag(name), "properties": map[string]any{"zoneType": "Public", "nameServers": []string{"ns1-01.azure-dns.com.", "ns2-01.azure-dns.net."}},
		})
	}
	page, next, ok := offsetPage(out, r.URL.Query().Get("$skipToken"), f.pageSizeOr(100))
	if !ok {
		azFail(w, http.StatusBadRequest, "InvalidSkipToken", "The $skipToken is invalid.")
		return
	}
	azWrite(w, http.StatusOK, map[string]any{"value": page, "nextLink": nextLink(r, next)})
}

// zone returns the zone the request names (FQDN), or answers 404.
func (f *Azure) zone(w http.ResponseWriter, r *http.Request) (string, bool) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	zs, err := f.backend.ListZones(ctx)
	if err != nil {
		azFail(w, http.StatusInternalServerError, "InternalServerError", "backend: "+err.Error())
		return "", false
	}
	want := fqdn(r.PathValue("zone"))
	if slices.ContainsFunc(zs, func(z libdns.Zone) bool { return fqdn(z.Name) == want }) {
		return want, true
	}
	azFail(w, http.StatusNotFound, "ParentResourceNotFound", fmt.Sprintf("Can not perform requested operation on nested resource. Parent resource '%s' not found.", strings.TrimSuffix(want, ".")))
	return "", false
}

func etag(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	b := hex.EncodeToString(h[:16])
	return b[:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:32]
}

// azSet renders a record set as Azure does.
func (f *Azure) azSet(zone string, s rrSet) map[string]any {
	name := s.name
	if name == "" {
		name = "@"
	}
	data := slices.Clone(s.data)
	slices.Sort(data)
	props := map[string]any{"TTL": int64(s.ttl / time.Second), "fqdn": libdns.AbsoluteName(s.name, zone), "provisioningState": "Succeeded"}
	switch s.typ {
	case "TXT":
		var recs []map[string][]string
		for _, d := range s.data {
			recs = append(recs, map[string][]string{"value": {d}})
		}
		props["TXTRecords"] = recs
	case "A", "AAAA":
		var recs []map[string]string
		for _, d := range s.data {
			recs = append(recs, map[string]string{"ipv" + map[string]string{"A": "4", "AAAA": "6"}[s.typ] + "Address": d})
		}
		props[s.typ+"Records"] = recs
	case "CNAME":
		props["CNAMERecord"] = map[string]string{"cname": s.data[0]}
	}
	return map[string]any{
		"id":   f.zonesPath() + "/" + strings.TrimSuffix(zone, ".") + "/" + s.typ + "/" + name,
		"name": name, "type": "Microsoft.Network/dnszones/" + s.typ,
		"etag": etag(append([]string{s.name, s.typ, strconv.FormatInt(int64(s.ttl), 10)}, data...)...), "properties": props,
	}
}

// sets returns the zone's record sets.
func (f *Azure) sets(w http.ResponseWriter, r *http.Request, zone string) ([]rrSet, bool) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	recs, err := f.backend.GetRecords(ctx, zone)
	if err != nil {
		azFail(w, http.StatusInternalServerError, "InternalServerError", "backend: "+err.Error())
		return nil, false
	}
	return recordSets(recs), true
}

func (f *Azure) listRecordSets(w http.ResponseWriter, r *http.Request) {
	f.countOp("RecordSetsList")
	zone, ok := f.zone(w, r)
	if !ok {
		return
	}
	sets, ok := f.sets(w, r, zone)
	if !ok {
		return
	}
	var out []map[string]any
	for _, s := range sets {
		out = append(out, f.azSet(zone, s))
	}
	page, next, ok := offsetPage(out, r.URL.Query().Get("$skipToken"), f.pageSizeOr(100))
	if !ok {
		azFail(w, http.StatusBadRequest, "InvalidSkipToken", "The $skipToken is invalid.")
		return
	}
	azWrite(w, http.StatusOK, map[string]any{"value": page, "nextLink": nextLink(r, next)})
}

// target returns the zone and the TXT record set the request names, the
// set's current state and its ETag ("" when it does not exist).
func (f *Azure) target(w http.ResponseWriter, r *http.Request) (zone string, cur rrSet, tag string, ok bool) {
	if r.PathValue("type") != "TXT" {
		azDNSFail(w, http.StatusBadRequest, "BadRequest", "the fake serves TXT record sets only")
		return "", rrSet{}, "", false
	}
	zone, ok = f.zone(w, r)
	if !ok {
		return "", rrSet{}, "", false
	}
	sets, ok := f.sets(w, r, zone)
	if !ok {
		return "", rrSet{}, "", false
	}
	name := strings.ToLower(r.PathValue("name"))
	if name == "@" {
		name = ""
	}
	cur, found := find(sets, name, "TXT")
	cur.name, cur.typ = name, "TXT"
	if found {
		tag, _ = f.azSet(zone, cur)["etag"].(string)
	}
	return zone, cur, tag, true
}

// precondition checks If-Match and If-None-Match against the ETag tag.
func precondition(w http.ResponseWriter, r *http.Request, tag string) bool {
	if m := r.Header.Get("If-None-Match"); m == "*" && tag != "" {
		azDNSFail(w, http.StatusPreconditionFailed, "PreconditionFailed", fmt.Sprintf("The condition '*' in the If-None-Match header was not satisfied. The current was '%s'.", tag))
		return false
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != tag {
		azDNSFail(w, http.StatusPreconditionFailed, "PreconditionFailed", fmt.Sprintf("The condition '%s' in the If-Match header was not satisfied. The current was '%s'.", m, tag))
		return false
	}
	return true
}

func (f *Azure) getRecordSet(w http.ResponseWriter, r *http.Request) {
	f.countOp("RecordSetsGet")
	zone, cur, tag, ok := f.target(w, r)
	if !ok {
		return
	}
	if tag == "" {
		azDNSFail(w, http.StatusNotFound, "NotFound", fmt.Sprintf("The resource record '%s' does not exist in resource group '%s' of subscription '%s'.", r.PathValue("name"), f.creds.ResourceGroup, f.creds.SubscriptionID))
		return
	}
	azWrite(w, http.StatusOK, f.azSet(zone, cur))
}

func (f *Azure) putRecordSet(w http.ResponseWriter, r *http.Request) {
	f.countOp("RecordSetsCreateOrUpdate")
	var body struct {
		Properties struct {
			TTL        *int64 `json:"TTL"`
			TXTRecords []struct {
				Value []string `json:"value"`
			} `json:"TXTRecords"`
		} `json:"properties"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		azDNSFail(w, http.StatusBadRequest, "BadRequest", "The request body could not be parsed.")
		return
	}
	next := rrSet{typ: "TXT", ttl: 3600 * time.Second}
	if t := body.Properties.TTL; t != nil {
		if *t < 0 || *t > 2147483647 {
			azDNSFail(w, http.StatusBadRequest, "BadRequest", "The value of the TTL is invalid.")
			return
		}
		next.ttl = time.Duration(*t) * time.Second
	}
	for _, t := range body.Properties.TXTRecords {
		if len(t.Value) == 0 || slices.ContainsFunc(t.Value, func(v string) bool { return len(v) > 1024 }) {
			azDNSFail(w, http.StatusBadRequest, "BadRequest", "A TXT record needs 1 or more strings of at most 1024 characters.")
			return
		}
		next.data = append(next.data, strings.Join(t.Value, ""))
	}
	f.write.Lock()
	defer f.write.Unlock()
	zone, cur, tag, ok := f.target(w, r)
	if !ok || !precondition(w, r, tag) {
		return
	}
	next.name = cur.name
	ctx, cancel := backendCtx(r)
	defer cancel()
	if tag != "" {
		if _, err := f.backend.DeleteRecords(ctx, zone, records(cur.rrs())); err != nil {
			azFail(w, http.StatusInternalServerError, "InternalServerError", "backend: "+err.Error())
			return
		}
	}
	if _, err := f.backend.AppendRecords(ctx, zone, records(next.rrs())); err != nil {
		azFail(w, http.StatusInternalServerError, "InternalServerError", "backend: "+err.Error())
		return
	}
	if f.lostAnswer(w, nil) {
		return
	}
	status := http.StatusOK
	if tag == "" {
		status = http.StatusCreated
	}
	azWrite(w, status, f.azSet(zone, next))
}

func (f *Azure) deleteRecordSet(w http.ResponseWriter, r *http.Request) {
	f.countOp("RecordSetsDelete")
	f.write.Lock()
	defer f.write.Unlock()
	zone, cur, tag, ok := f.target(w, r)
	if !ok {
		return
	}
	if tag == "" && r.Header.Get("If-Match") == "" {
		azWrite(w, http.StatusNoContent, nil)
		return
	}
	if !precondition(w, r, tag) {
		return
	}
	ctx, cancel := backendCtx(r)
	defer cancel()
	if _, err := f.backend.DeleteRecords(ctx, zone, records(cur.rrs())); err != nil {
		azFail(w, http.StatusInternalServerError, "InternalServerError", "backend: "+err.Error())
		return
	}
	if f.lostAnswer(w, nil) {
		return
	}
	azWrite(w, http.StatusOK, nil)
}
