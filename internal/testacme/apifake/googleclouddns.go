package apifake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// Hosts of Google's real endpoints; the fake's Client sends requests for
// them to the fake.
const (
	GoogleDNSHost   = "dns.googleapis.com"
	GoogleTokenHost = "oauth2.googleapis.com"
	googleTokenURI  = "https://" + GoogleTokenHost + "/token"
	googleScope     = "https://www.googleapis.com/auth/ndev.clouddns.readwrite"
)

// GoogleCloudDNS is a fake of the Google Cloud DNS v1 REST API backed by a
// Backend, with Google's OAuth 2.0 token endpoint: managedZones.list
// (dnsName filter, pagination), resourceRecordSets.list (name and type
// filters, pagination) and changes.create (deletions that must match the
// current record set exactly, else 412 conditionNotMet; additions that must
// not exist, else 409 alreadyExists; applied all or nothing). The token
// endpoint accepts only a JWT assertion (RFC 7523) signed with the key of
// ServiceAccountJSON, for the Cloud DNS scope, and issues access tokens that
// the API then requires. Every zone of the backend is a public managed zone
// of one project. Lists page at 100 items, or at SetPageSize.
//
// Injected throttling answers are HTTP 429 rateLimitExceeded with a
// Retry-After header; injected server errors are 500 backendError, 502 (an
// HTML page, as Google's front end sends it), 503 and connections closed
// without an answer.
type GoogleCloudDNS struct {
	server
	backend Backend
	project string
	email   string
	key     *rsa.PrivateKey

	cfgMu  sync.Mutex
	tokens map[string]time.Time // issued access token -> expiry
}

var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
	testKeyErr  error
)

// NewGoogleCloudDNS starts a fake Google Cloud DNS API whose project
// project holds the zones of backend. Close it when done.
func NewGoogleCloudDNS(backend Backend, project string) *GoogleCloudDNS {
	// One key per test process: RSA key generation is slow under -race.
	testKeyOnce.Do(func() { testKey, testKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	f := &GoogleCloudDNS{
		backend: backend, project: project, key: testKey,
		email:  "certfleet-test@" + project + ".iam.gserviceaccount.com",
		tokens: make(map[string]time.Time),
	}
	base := "/dns/v1/projects/{project}/managedZones"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET "+base, f.authorized(f.listZones))
	mux.HandleFunc("GET "+base+"/{zone}/rrsets", f.authorized(f.listRRSets))
	mux.HandleFunc("POST "+base+"/{zone}/changes", f.authorized(f.createChange))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		gFail(w, http.StatusNotFound, "notFound", "NOT_FOUND", "no route for "+r.Method+" "+r.URL.Path)
	})
	f.start(mux, f.injectFault)
	return f
}

// ServiceAccountJSON returns a service-account key that the fake accepts,
// as Google's console downloads it.
func (f *GoogleCloudDNS) ServiceAccountJSON() []byte {
	if testKeyErr != nil {
		return nil
	}
	der, _ := x509.MarshalPKCS8PrivateKey(f.key)
	b, _ := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  f.project,
		"private_key_id":              "0123456789abcdef0123456789abcdef01234567",
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                f.email,
		"client_id":                   "123456789012345678901",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   googleTokenURI,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	return b
}

// ManagedZone returns the name the fake gives the managed zone of zone.
func (f *GoogleCloudDNS) ManagedZone(zone string) string {
	return "zone-" + strings.ReplaceAll(strings.TrimSuffix(fqdn(zone), "."), ".", "-")
}

// RevokeTokens forgets every access token issued, as when they expire.
func (f *GoogleCloudDNS) RevokeTokens() {
	f.cfgMu.Lock()
	defer f.cfgMu.Unlock()
	clear(f.tokens)
}

// FailNext makes the next n requests fail with the given HTTP status and
// a matching Google error (429 carries Retry-After).
func (f *GoogleCloudDNS) FailNext(n, status int) {
	f.failNext(n, forcedFault{status: status})
}

// Transport returns an http.RoundTripper that sends requests for
// dns.googleapis.com and oauth2.googleapis.com to the fake and refuses every
// other host.
func (f *GoogleCloudDNS) Transport() http.RoundTripper {
	return f.redirect(GoogleDNSHost, GoogleTokenHost)
}

// Client returns an http.Client using Transport.
func (f *GoogleCloudDNS) Client() *http.Client {
	return client(f.Transport())
}

func (f *GoogleCloudDNS) injectFault(w http.ResponseWriter, _ *http.Request, kind int, forced forcedFault) {
	switch {
	case kind == -1 && forced.status == http.StatusTooManyRequests, kind == faultThrottle:
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfterSeconds()))
		gFail(w, http.StatusTooManyRequests, "rateLimitExceeded", "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Write requests' of service 'dns.googleapis.com'.")
	case kind == -1:
		gFail(w, forced.status, "injected", strings.ToUpper(strings.ReplaceAll(http.StatusText(forced.status), " ", "_")), http.StatusText(forced.status))
	case kind == faultServerError:
		gFail(w, http.StatusInternalServerError, "backendError", "INTERNAL", "Internal error encountered.")
	case kind == faultBadGateway:
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, "<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title><p><b>502.</b> <ins>That’s an error.</ins></html>")
	case kind == faultUnavailable:
		gFail(w, http.StatusServiceUnavailable, "backendError", "UNAVAILABLE", "The service is currently unavailable.")
	default:
		hangUp(w)
	}
}

func gWrite(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// gFail answers with Google's JSON error format.
func gFail(w http.ResponseWriter, status int, reason, grpcStatus, msg string) {
	gWrite(w, status, map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": grpcStatus,
		"errors": []map[string]string{{"message": msg, "domain": "global", "reason": reason}},
	}})
}

func oauthFail(w http.ResponseWriter, status int, code, desc string) {
	gWrite(w, status, map[string]string{"error": code, "error_description": desc})
}

// token serves the OAuth 2.0 token endpoint: JWT bearer grant only.
func (f *GoogleCloudDNS) token(w http.ResponseWriter, r *http.Request) {
	f.countOp("Token")
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.countRejected()
		oauthFail(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	if msg := f.checkAssertion(r.PostForm.Get("assertion"), time.Now()); msg != "" {
		f.countRejected()
		oauthFail(w, http.StatusBadRequest, "invalid_grant", msg)
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "ya29.fake-" + hex.EncodeToString(b)
	f.cfgMu.Lock()
	f.tokens[tok] = time.Now().Add(time.Hour)
	f.cfgMu.Unlock()
	gWrite(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

// checkAssertion verifies a JWT as Google does; it returns the error
// description, or "" when the assertion is good.
func (f *GoogleCloudDNS) checkAssertion(jwt string, now time.Time) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
	}
	dec := base64.RawURLEncoding
	var header struct{ Alg, Typ string }
	var claims struct {
		Iss, Scope, Aud string
		Iat, Exp        int64
	}
	hb, err1 := dec.DecodeString(parts[0])
	cb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return "Invalid JWT: malformed."
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if header.Alg != "RS256" || rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return "Invalid JWT Signature."
	}
	switch {
	case claims.Iss != f.email:
		return "Invalid grant: account not found"
	case claims.Aud != googleTokenURI:
		return "Invalid JWT: aud must be " + googleTokenURI
	case !slices.Contains(strings.Fields(claims.Scope), googleScope):
		return "Invalid JWT: the scope does not include Cloud DNS"
	case claims.Iat > now.Add(time.Minute).Unix() || claims.Exp <= now.Unix() || claims.Exp-claims.Iat > 3600:
		return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
	}
	return ""
}

// authorized checks the bearer token and the project before h.
func (f *GoogleCloudDNS) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.cfgMu.Lock()
		exp, known := f.tokens[tok]
		f.cfgMu.Unlock()
		if !ok || !known || time.Now().After(exp) {
			f.countRejected()
			gFail(w, http.StatusUnauthorized, "authError", "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
			return
		}
		if r.PathValue("project") != f.project {
			f.countRejected()
			gFail(w, http.StatusForbidden, "forbidden", "PERMISSION_DENIED", "The caller does not have permission")
			return
		}
		h(w, r)
	}
}

type gZone struct {
	Kind        string   `json:"kind"`
	Name        string   `json:"name"`
	DNSName     string   `json:"dnsName"`
	ID          string   `json:"id"`
	Visibility  string   `json:"visibility"`
	NameServers []string `json:"nameServers"`
}

type gRRSet struct {
	Kind    string   `json:"kind,omitempty"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	TTL     int64    `json:"ttl"`
	Rrdatas []string `json:"rrdatas"`
}

func (f *GoogleCloudDNS) zones(w http.ResponseWriter, r *http.Request) ([]gZone, bool) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	zs, err := f.backend.ListZones(ctx)
	if err != nil {
		gFail(w, http.StatusInternalServerError, "backendError", "INTERNAL", "backend: "+err.Error())
		return nil, false
	}
	out := make([]gZone, 0, len(zs))
	for i, z := range zs {
		out = append(out, gZone{
			Kind: "dns#managedZone", Name: f.ManagedZone(z.Name), DNSName: fqdn(z.Name), ID: strconv.Itoa(1000 + i),
			Visibility: "public", NameServers: []string{"ns-cloud-a1.googledomains.com.", "ns-cloud-a2.googledomains.com."},
		})
	}
	return out, true
}

func (f *GoogleCloudDNS) zone(w http.ResponseWriter, r *http.Request) (gZone, bool) {
	zs, ok := f.zones(w, r)
	if !ok {
		return gZone{}, false
	}
	for _, z := range zs {
		if z.Name == r.PathValue("zone") {
			return z, true
		}
	}
	gFail(w, http.StatusNotFound, "notFound", "NOT_FOUND", fmt.Sprintf("The 'parameters.managedZone' resource named '%s' does not exist.", r.PathValue("zone")))
	return gZone{}, false
}

func (f *GoogleCloudDNS) listZones(w http.ResponseWriter, r *http.Request) {
	f.countOp("ManagedZonesList")
	zs, ok := f.zones(w, r)
	if !ok {
		return
	}
	if name := r.URL.Query().Get("dnsName"); name != "" {
		zs = slices.DeleteFunc(zs, func(z gZone) bool { return z.DNSName != fqdn(name) })
	}
	page, next, ok := offsetPage(zs, r.URL.Query().Get("pageToken"), f.pageSizeOr(100))
	if !ok {
		gFail(w, http.StatusBadRequest, "invalid", "INVALID_ARGUMENT", "Invalid value for 'pageToken'")
		return
	}
	gWrite(w, http.StatusOK, map[string]any{"kind": "dns#managedZonesListResponse", "managedZones": page, "nextPageToken": next})
}

// sets returns the zone's record sets in Google's form.
func (f *GoogleCloudDNS) sets(w http.ResponseWriter, r *http.Request, z gZone) ([]gRRSet, bool) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	recs, err := f.backend.GetRecords(ctx, z.DNSName)
	if err != nil {
		gFail(w, http.StatusInternalServerError, "backendError", "INTERNAL", "backend: "+err.Error())
		return nil, false
	}
	var out []gRRSet
	for _, s := range recordSets(recs) {
		g := gRRSet{Kind: "dns#resourceRecordSet", Name: fqdn(libdns.AbsoluteName(s.name, z.DNSName)), Type: s.typ, TTL: int64(s.ttl / time.Second)}
		for _, d := range s.data {
			if s.typ == "TXT" {
				d = strconv.Quote(d) // the test's values are printable ASCII
			}
			g.Rrdatas = append(g.Rrdatas, d)
		}
		out = append(out, g)
	}
	return out, true
}

func (f *GoogleCloudDNS) listRRSets(w http.ResponseWriter, r *http.Request) {
	f.countOp("ResourceRecordSetsList")
	z, ok := f.zone(w, r)
	if !ok {
		return
	}
	sets, ok := f.sets(w, r, z)
	if !ok {
		return
	}
	q := r.URL.Query()
	if q.Get("type") != "" && q.Get("name") == "" {
		gFail(w, http.StatusBadRequest, "invalid", "INVALID_ARGUMENT", "The 'parameters.type' filter requires the 'parameters.name' filter.")
		return
	}
	sets = slices.DeleteFunc(sets, func(s gRRSet) bool {
		return (q.Get("name") != "" && s.Name != fqdn(q.Get("name"))) || (q.Get("type") != "" && s.Type != q.Get("type"))
	})
	page, next, ok := offsetPage(sets, q.Get("pageToken"), f.pageSizeOr(100))
	if !ok {
		gFail(w, http.StatusBadRequest, "invalid", "INVALID_ARGUMENT", "Invalid value for 'pageToken'")
		return
	}
	gWrite(w, http.StatusOK, map[string]any{"kind": "dns#resourceRecordSetsListResponse", "rrsets": page, "nextPageToken": next})
}

// unquoteTXT reads TXT rrdata: quoted character strings, joined.
func unquoteTXT(d string) (string, bool) {
	var b strings.Builder
	for rest := strings.TrimSpace(d); rest != ""; rest = strings.TrimSpace(rest) {
		s, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", false
		}
		u, _ := strconv.Unquote(s)
		b.WriteString(u)
		rest = rest[len(s):]
	}
	return b.String(), true
}

// backendSet converts a record set of a request to the backend's form.
func backendSet(g gRRSet, z gZone) (rrSet, error) {
	name := fqdn(g.Name)
	if name != z.DNSName && !strings.HasSuffix(name, "."+z.DNSName) {
		return rrSet{}, fmt.Errorf("name %q is not in zone %q", g.Name, z.DNSName)
	}
	if g.Type == "" || len(g.Rrdatas) == 0 || g.TTL < 0 {
		return rrSet{}, fmt.Errorf("record set %q needs a type, a TTL and rrdatas", g.Name)
	}
	s := rrSet{name: strings.TrimPrefix(libdns.RelativeName(name, z.DNSName), "@"), typ: g.Type, ttl: time.Duration(g.TTL) * time.Second}
	for _, d := range g.Rrdatas {
		if g.Type == "TXT" {
			v, ok := unquoteTXT(d)
			if !ok {
				return rrSet{}, fmt.Errorf("invalid TXT rrdata %q", d)
			}
			d = v
		}
		s.data = append(s.data, d)
	}
	return s, nil
}

func (f *GoogleCloudDNS) createChange(w http.ResponseWriter, r *http.Request) {
	f.countOp("ChangesCreate")
	z, ok := f.zone(w, r)
	if !ok {
		return
	}
	var ch struct {
		Additions []gRRSet `json:"additions"`
		Deletions []gRRSet `json:"deletions"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&ch); err != nil {
		gFail(w, http.StatusBadRequest, "parseError", "INVALID_ARGUMENT", "Parse Error")
		return
	}
	if len(ch.Additions)+len(ch.Deletions) == 0 {
		gFail(w, http.StatusBadRequest, "required", "INVALID_ARGUMENT", "The 'entity.change' resource has no additions or deletions.")
		return
	}
	f.write.Lock()
	defer f.write.Unlock()
	ctx, cancel := backendCtx(r)
	defer cancel()
	recs, err := f.backend.GetRecords(ctx, z.DNSName)
	if err != nil {
		gFail(w, http.StatusInternalServerError, "backendError", "INTERNAL", "backend: "+err.Error())
		return
	}
	current := recordSets(recs)
	var dels, adds []rrSet
	for i, g := range ch.Deletions {
		s, err := backendSet(g, z)
		if err != nil {
			gFail(w, http.StatusBadRequest, "invalid", "INVALID_ARGUMENT", err.Error())
			return
		}
		have, ok := find(current, s.name, s.typ)
		if !ok {
			gFail(w, http.StatusNotFound, "notFound", "NOT_FOUND", fmt.Sprintf("The 'entity.change.deletions[%d]' resource named '%s (%s)' does not exist.", i, g.Name, g.Type))
			return
		}
		if !sameSet(have.rrs(), s.rrs()) {
			gFail(w, http.StatusPreconditionFailed, "conditionNotMet", "FAILED_PRECONDITION", fmt.Sprintf("Precondition not met for 'entity.change.deletions[%d]'", i))
			return
		}
		current = slices.DeleteFunc(current, func(c rrSet) bool { return c.name == s.name && c.typ == s.typ })
		dels = append(dels, have)
	}
	for i, g := range ch.Additions {
		s, err := backendSet(g, z)
		if err != nil {
			gFail(w, http.StatusBadRequest, "invalid", "INVALID_ARGUMENT", err.Error())
			return
		}
		if _, ok := find(current, s.name, s.typ); ok {
			gFail(w, http.StatusConflict, "alreadyExists", "ALREADY_EXISTS", fmt.Sprintf("The resource 'entity.change.additions[%d]' named '%s (%s)' already exists", i, g.Name, g.Type))
			return
		}
		current = append(current, s)
		adds = append(adds, s)
	}
	for _, s := range dels {
		if _, err := f.backend.DeleteRecords(ctx, z.DNSName, records(s.rrs())); err != nil {
			gFail(w, http.StatusInternalServerError, "backendError", "INTERNAL", "backend: "+err.Error())
			return
		}
	}
	for _, s := range adds {
		if _, err := f.backend.AppendRecords(ctx, z.DNSName, records(s.rrs())); err != nil {
			gFail(w, http.StatusInternalServerError, "backendError", "INTERNAL", "backend: "+err.Error())
			return
		}
	}
	if f.lostAnswer(w, nil) {
		return
	}
	gWrite(w, http.StatusOK, map[string]any{
		"kind": "dns#change", "id": strconv.FormatInt(time.Now().UnixNano(), 10), "status": "done",
		"additions": ch.Additions, "deletions": ch.Deletions, "startTime": time.Now().UTC().Format(time.RFC3339),
	})
}
