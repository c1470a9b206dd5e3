package apifake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
)

// CloudflareHost is the host name of the real Cloudflare API; the fake's
// Client and Transport send requests for it to the fake.
const CloudflareHost = "api.cloudflare.com"

// Cloudflare is a fake of the Cloudflare v4 API (zones and DNS records)
// backed by a Backend: zone lookup and listing, DNS record list (filters
// type, name, content, content.contains, content.exact; pagination),
// create, get, patch, overwrite and delete; bearer-token authentication; and
// the errors the real API gives (identical record, record not found, invalid
// TTL, bad token). Zone and record ids are derived from names and contents.
//
// Its pagination caps pages at the real API's defaults (100 records, 20
// zones) or at SetPageSize, whichever is smaller. Injected throttling answers
// are HTTP 429 with code 971 and a Retry-After header; injected server errors
// are 500 (JSON), 502 and 503 (HTML, as Cloudflare's edge sends them) and
// connections closed without an answer.
type Cloudflare struct {
	server
	backend Backend

	cfgMu     sync.Mutex
	token     string
	zoneToken string
}

// NewCloudflare starts a fake Cloudflare API over backend that accepts the
// bearer token token. Close it when done.
func NewCloudflare(backend Backend, token string) *Cloudflare {
	f := &Cloudflare{backend: backend, token: token}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /client/v4/zones", f.listZones)
	mux.HandleFunc("GET /client/v4/zones/{zone}", f.getZone)
	mux.HandleFunc("GET /client/v4/zones/{zone}/dns_records", f.listRecords)
	mux.HandleFunc("POST /client/v4/zones/{zone}/dns_records", f.createRecord)
	mux.HandleFunc("GET /client/v4/zones/{zone}/dns_records/{id}", f.getRecord)
	mux.HandleFunc("PATCH /client/v4/zones/{zone}/dns_records/{id}", f.updateRecord)
	mux.HandleFunc("PUT /client/v4/zones/{zone}/dns_records/{id}", f.updateRecord)
	mux.HandleFunc("DELETE /client/v4/zones/{zone}/dns_records/{id}", f.deleteRecord)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		cfFail(w, http.StatusBadRequest, 7000, "No route for that URI")
	})
	f.start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(mux, w, r) }), f.injectFault)
	return f
}

// SetZoneToken makes the fake accept a second token, for zone lookups only
// (a Zone:Read token, libdns/cloudflare's ZoneToken). DNS record requests
// made with it are refused.
func (f *Cloudflare) SetZoneToken(token string) {
	f.cfgMu.Lock()
	defer f.cfgMu.Unlock()
	f.zoneToken = token
}

// FailNext makes the next n requests fail with the given HTTP status and
// a matching Cloudflare error (429 carries Retry-After).
func (f *Cloudflare) FailNext(n, status int) {
	f.failNext(n, forcedFault{status: status})
}

// Transport returns an http.RoundTripper that sends requests for
// api.cloudflare.com to the fake and refuses every other host.
func (f *Cloudflare) Transport() http.RoundTripper {
	return f.redirect(CloudflareHost)
}

// Client returns an http.Client using Transport, for libdns/cloudflare's
// HTTPClient field.
func (f *Cloudflare) Client() *http.Client {
	return client(f.Transport())
}

// serve checks the bearer token before mux.
func (f *Cloudflare) serve(mux http.Handler, w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	tok, isBearer := strings.CutPrefix(auth, "Bearer ")
	f.cfgMu.Lock()
	apiToken, zoneToken := f.token, f.zoneToken
	f.cfgMu.Unlock()
	zoneLookup := r.Method == http.MethodGet && (r.URL.Path == "/client/v4/zones" || !strings.Contains(strings.TrimPrefix(r.URL.Path, "/client/v4/zones/"), "/"))
	switch {
	case auth == "":
		f.countRejected()
		cfFail(w, http.StatusBadRequest, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
		return
	case !isBearer || tok == "" || strings.ContainsAny(tok, " \t\r\n"):
		f.countRejected()
		cfFail(w, http.StatusBadRequest, 6111, "Invalid format for Authorization header")
		return
	case tok == apiToken:
	case zoneToken != "" && tok == zoneToken && zoneLookup:
	case zoneToken != "" && tok == zoneToken:
		f.countRejected()
		cfFail(w, http.StatusForbidden, 10000, "Authentication error")
		return
	default:
		f.countRejected()
		cfFail(w, http.StatusForbidden, 9109, "Invalid access token")
		return
	}
	mux.ServeHTTP(w, r)
}

func (f *Cloudflare) injectFault(w http.ResponseWriter, _ *http.Request, kind int, forced forcedFault) {
	switch {
	case kind == -1 && forced.status == http.StatusTooManyRequests, kind == faultThrottle:
		w.Header().Set("Retry-After", strconv.Itoa(f.retryAfterSeconds()))
		cfFail(w, http.StatusTooManyRequests, 971, "Please wait and consider throttling your request speed")
	case kind == -1 && (forced.status == http.StatusUnauthorized || forced.status == http.StatusForbidden):
		cfFail(w, forced.status, 10000, "Authentication error")
	case kind == -1:
		cfFail(w, forced.status, 1000+forced.status, http.StatusText(forced.status))
	case kind == faultServerError:
		cfFail(w, http.StatusInternalServerError, 1000, "Internal Server Error")
	case kind == faultBadGateway:
		htmlError(w, http.StatusBadGateway)
	case kind == faultUnavailable:
		htmlError(w, http.StatusServiceUnavailable)
	default:
		hangUp(w)
	}
}

func htmlError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n",
		status, http.StatusText(status), status, http.StatusText(status))
}

// lostError is the server error Cloudflare's edge answers when the origin
// does not: one of the answers of a write whose response is lost.
func lostError(w http.ResponseWriter) { htmlError(w, http.StatusGatewayTimeout) }

type cfError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type cfResultInfo struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
	TotalPages int `json:"total_pages"`
}

type cfEnvelope struct {
	Result     any           `json:"result"`
	Success    bool          `json:"success"`
	Errors     []cfError     `json:"errors"`
	Messages   []any         `json:"messages"`
	ResultInfo *cfResultInfo `json:"result_info,omitempty"`
}

func cfWrite(w http.ResponseWriter, status int, env cfEnvelope) {
	if env.Errors == nil {
		env.Errors = []cfError{}
	}
	env.Messages = []any{}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(env)
}

func cfOK(w http.ResponseWriter, result any, info *cfResultInfo) {
	cfWrite(w, http.StatusOK, cfEnvelope{Result: result, Success: true, ResultInfo: info})
}

func cfFail(w http.ResponseWriter, status, code int, msg string) {
	cfWrite(w, status, cfEnvelope{Errors: []cfError{{Code: code, Message: msg}}})
}

type cfZone struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Status      string   `json:"status"`
	Paused      bool     `json:"paused"`
	Type        string   `json:"type"`
	NameServers []string `json:"name_servers"`
	CreatedOn   string   `json:"created_on"`
	ModifiedOn  string   `json:"modified_on"`
	ActivatedOn string   `json:"activated_on"`
	Permissions []string `json:"permissions"`
}

type cfRecord struct {
	ID         string         `json:"id,omitempty"`
	ZoneID     string         `json:"zone_id,omitempty"`
	ZoneName   string         `json:"zone_name,omitempty"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Content    string         `json:"content"`
	Priority   *uint16        `json:"priority,omitempty"`
	Proxiable  bool           `json:"proxiable"`
	Proxied    bool           `json:"proxied"`
	TTL        int            `json:"ttl"`
	Locked     bool           `json:"locked"`
	Data       map[string]any `json:"data,omitempty"`
	CreatedOn  string         `json:"created_on,omitempty"`
	ModifiedOn string         `json:"modified_on,omitempty"`
}

const cfTimestamp = "2024-01-01T00:00:00Z"

func cfID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

// zones returns the backend's zones as Cloudflare zones.
func (f *Cloudflare) zones(r *http.Request) ([]cfZone, error) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	zs, err := f.backend.ListZones(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]cfZone, 0, len(zs))
	for _, z := range zs {
		name := strings.ToLower(strings.TrimSuffix(z.Name, "."))
		out = append(out, cfZone{
			ID: cfID("zone", name), Name: name, Status: "active", Type: "full",
			NameServers: []string{"ns1.apifake.test", "ns2.apifake.test"},
			CreatedOn:   cfTimestamp, ModifiedOn: cfTimestamp, ActivatedOn: cfTimestamp,
			Permissions: []string{"#dns_records:edit", "#dns_records:read", "#zone:read"},
		})
	}
	slices.SortFunc(out, func(a, b cfZone) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *Cloudflare) zoneByID(w http.ResponseWriter, r *http.Request) (cfZone, bool) {
	zs, err := f.zones(r)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return cfZone{}, false
	}
	id := r.PathValue("zone")
	for _, z := range zs {
		if z.ID == id {
			return z, true
		}
	}
	cfFail(w, http.StatusBadRequest, 7003, "Could not route to /zones/"+id+", perhaps your object identifier is invalid?")
	return cfZone{}, false
}

// page returns the items of the requested page and its result info.
func page[T any](r *http.Request, items []T, defaultSize, maxSize, capSize int) ([]T, *cfResultInfo, error) {
	q := r.URL.Query()
	pg, per := 1, defaultSize
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("page must be a positive integer")
		}
		pg = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("per_page must be a positive integer")
		}
		per = min(n, maxSize)
	}
	if capSize > 0 {
		per = min(per, capSize)
	}
	lo := min((pg-1)*per, len(items))
	hi := min(lo+per, len(items))
	return items[lo:hi], &cfResultInfo{
		Page: pg, PerPage: per, Count: hi - lo, TotalCount: len(items),
		TotalPages: (len(items) + per - 1) / per,
	}, nil
}

func (f *Cloudflare) listZones(w http.ResponseWriter, r *http.Request) {
	f.countOp("ListZones")
	zs, err := f.zones(r)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	if name := r.URL.Query().Get("name"); name != "" {
		want := strings.ToLower(strings.TrimSuffix(name, "."))
		zs = slices.DeleteFunc(zs, func(z cfZone) bool { return z.Name != want })
	}
	items, info, err := page(r, zs, 20, 50, f.pageSizeOr(0))
	if err != nil {
		cfFail(w, http.StatusBadRequest, 1001, err.Error())
		return
	}
	cfOK(w, items, info)
}

func (f *Cloudflare) getZone(w http.ResponseWriter, r *http.Request) {
	f.countOp("GetZone")
	if z, ok := f.zoneByID(w, r); ok {
		cfOK(w, z, nil)
	}
}

// records returns the zone's records as Cloudflare records, sorted.
func (f *Cloudflare) records(r *http.Request, z cfZone) ([]cfRecord, error) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	recs, err := f.backend.GetRecords(ctx, z.Name+".")
	if err != nil {
		return nil, err
	}
	out := make([]cfRecord, 0, len(recs))
	for _, rec := range recs {
		out = append(out, toCF(rec.RR(), z))
	}
	slices.SortFunc(out, func(a, b cfRecord) int {
		return strings.Compare(a.Name+"\x00"+a.Type+"\x00"+a.Content, b.Name+"\x00"+b.Type+"\x00"+b.Content)
	})
	return out, nil
}

// toCF converts a backend record (relative name) to Cloudflare's form.
func toCF(rr libdns.RR, z cfZone) cfRecord {
	name := strings.ToLower(strings.TrimSuffix(libdns.AbsoluteName(rr.Name, z.Name+"."), "."))
	c := cfRecord{
		ZoneID: z.ID, ZoneName: z.Name, Name: name, Type: rr.Type, Content: rr.Data,
		TTL: int(rr.TTL / time.Second), CreatedOn: cfTimestamp, ModifiedOn: cfTimestamp,
	}
	switch rr.Type {
	case "TXT":
		c.Content = `"` + rr.Data + `"`
	case "CNAME", "NS":
		c.Content = strings.TrimSuffix(rr.Data, ".")
	case "MX":
		if rec, err := rr.Parse(); err == nil {
			if mx, ok := rec.(libdns.MX); ok {
				pref := mx.Preference
				c.Priority = &pref
				c.Content = strings.TrimSuffix(mx.Target, ".")
			}
		}
	case "A", "AAAA":
		c.Proxiable = true
	}
	c.ID = cfID(z.ID, c.Name, c.Type, c.Content)
	return c
}

// fromCF converts a Cloudflare record to a backend record. A record from a
// request is validated as the real API does; a stored one keeps its TTL.
func fromCF(c cfRecord, z cfZone, stored bool) (libdns.RR, error) {
	typ := strings.ToUpper(c.Type)
	name := strings.ToLower(strings.TrimSuffix(c.Name, "."))
	switch {
	case name == "" || name == "@":
		name = z.Name
	case name != z.Name && !strings.HasSuffix(name, "."+z.Name):
		name += "." + z.Name
	}
	rr := libdns.RR{Name: libdns.RelativeName(name+".", z.Name+"."), Type: typ, Data: c.Content}
	switch typ {
	case "":
		return rr, fmt.Errorf("type is required")
	case "TXT":
		rr.Data = c.Content
		if len(rr.Data) >= 2 && strings.HasPrefix(rr.Data, `"`) && strings.HasSuffix(rr.Data, `"`) {
			rr.Data = rr.Data[1 : len(rr.Data)-1]
		}
	case "CNAME", "NS":
		rr.Data = strings.TrimSuffix(c.Content, ".") + "."
	case "MX":
		var pref uint16
		if c.Priority != nil {
			pref = *c.Priority
		}
		rr.Data = fmt.Sprintf("%d %s.", pref, strings.TrimSuffix(c.Content, "."))
	case "A", "AAAA":
		a, err := netip.ParseAddr(c.Content)
		if err != nil || (typ == "A") != a.Is4() {
			return rr, fmt.Errorf("content for %s record must be a valid IP address", typ)
		}
	}
	if c.Content == "" && typ != "SRV" && typ != "CAA" && typ != "HTTPS" && typ != "SVCB" {
		return rr, fmt.Errorf("content is required")
	}
	switch {
	case stored:
		rr.TTL = time.Duration(c.TTL) * time.Second
	case c.TTL == 0 || c.TTL == 1:
		rr.TTL = 300 * time.Second // "automatic"
	case c.TTL < 60 || c.TTL > 86400:
		return rr, errInvalidTTL
	default:
		rr.TTL = time.Duration(c.TTL) * time.Second
	}
	return rr, nil
}

// errInvalidTTL stands for Cloudflare's error 9021.
var errInvalidTTL = errors.New("invalid TTL")

// cfDNSError answers a record that fails validation as Cloudflare does.
func cfDNSError(w http.ResponseWriter, err error) {
	if errors.Is(err, errInvalidTTL) {
		cfFail(w, http.StatusBadRequest, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
		return
	}
	cfFail(w, http.StatusBadRequest, 9000, "DNS Validation Error: "+err.Error())
}

func (f *Cloudflare) listRecords(w http.ResponseWriter, r *http.Request) {
	f.countOp("ListRecords")
	z, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	recs, err := f.records(r, z)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	q := r.URL.Query()
	keep := func(c cfRecord) bool {
		if t := q.Get("type"); t != "" && !strings.EqualFold(c.Type, t) {
			return false
		}
		for _, k := range []string{"name", "name.exact"} {
			if n := q.Get(k); n != "" && !strings.EqualFold(c.Name, strings.TrimSuffix(n, ".")) {
				return false
			}
		}
		for _, k := range []string{"content", "content.exact"} {
			if v := q.Get(k); v != "" && c.Content != v {
				return false
			}
		}
		if v := q.Get("content.contains"); v != "" && !strings.Contains(strings.ToLower(c.Content), strings.ToLower(v)) {
			return false
		}
		return true
	}
	recs = slices.DeleteFunc(recs, func(c cfRecord) bool { return !keep(c) })
	items, info, err := page(r, recs, 100, 5000, f.pageSizeOr(0))
	if err != nil {
		cfFail(w, http.StatusBadRequest, 1001, err.Error())
		return
	}
	cfOK(w, items, info)
}

func (f *Cloudflare) findRecord(w http.ResponseWriter, r *http.Request, z cfZone) (cfRecord, bool) {
	recs, err := f.records(r, z)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return cfRecord{}, false
	}
	id := r.PathValue("id")
	for _, c := range recs {
		if c.ID == id {
			return c, true
		}
	}
	cfFail(w, http.StatusNotFound, 81044, "Record does not exist.")
	return cfRecord{}, false
}

func (f *Cloudflare) getRecord(w http.ResponseWriter, r *http.Request) {
	f.countOp("GetRecord")
	z, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	if c, ok := f.findRecord(w, r, z); ok {
		cfOK(w, c, nil)
	}
}

func decodeCF(w http.ResponseWriter, r *http.Request) (cfRecord, bool) {
	var c cfRecord
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&c); err != nil {
		cfFail(w, http.StatusBadRequest, 9207, "Request body is invalid.")
		return c, false
	}
	return c, true
}

func (f *Cloudflare) createRecord(w http.ResponseWriter, r *http.Request) {
	f.countOp("CreateRecord")
	z, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	body, ok := decodeCF(w, r)
	if !ok {
		return
	}
	rr, err := fromCF(body, z, false)
	if err != nil {
		cfDNSError(w, err)
		return
	}
	f.write.Lock()
	defer f.write.Unlock()
	recs, err := f.records(r, z)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	c := toCF(rr, z)
	if slices.ContainsFunc(recs, func(e cfRecord) bool { return e.ID == c.ID }) {
		cfFail(w, http.StatusBadRequest, 81058, "An identical record already exists.")
		return
	}
	ctx, cancel := backendCtx(r)
	defer cancel()
	if _, err := f.backend.AppendRecords(ctx, z.Name+".", []libdns.Record{rr}); err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	if f.lostAnswer(w, lostError) {
		return
	}
	cfOK(w, c, nil)
}

func (f *Cloudflare) updateRecord(w http.ResponseWriter, r *http.Request) {
	op := "PatchRecord"
	if r.Method == http.MethodPut {
		op = "OverwriteRecord"
	}
	f.countOp(op)
	z, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	body, ok := decodeCF(w, r)
	if !ok {
		return
	}
	f.write.Lock()
	defer f.write.Unlock()
	old, ok := f.findRecord(w, r, z)
	if !ok {
		return
	}
	merged := old
	if r.Method == http.MethodPut {
		merged = body
	} else {
		if body.Name != "" {
			merged.Name = body.Name
		}
		if body.Type != "" {
			merged.Type = body.Type
		}
		if body.Content != "" {
			merged.Content = body.Content
		}
		if body.TTL != 0 {
			merged.TTL = body.TTL
		}
		if body.Priority != nil {
			merged.Priority = body.Priority
		}
	}
	oldRR, err := fromCF(old, z, true)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "stored record: "+err.Error())
		return
	}
	if body.TTL == 0 && r.Method == http.MethodPatch {
		merged.TTL = 1 // unchanged TTL: validated as automatic, then restored
	}
	newRR, err := fromCF(merged, z, false)
	if err != nil {
		cfDNSError(w, err)
		return
	}
	if body.TTL == 0 && r.Method == http.MethodPatch {
		newRR.TTL = oldRR.TTL
	}
	ctx, cancel := backendCtx(r)
	defer cancel()
	if _, err := f.backend.DeleteRecords(ctx, z.Name+".", []libdns.Record{oldRR}); err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	if _, err := f.backend.AppendRecords(ctx, z.Name+".", []libdns.Record{newRR}); err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	if f.lostAnswer(w, lostError) {
		return
	}
	cfOK(w, toCF(newRR, z), nil)
}

func (f *Cloudflare) deleteRecord(w http.ResponseWriter, r *http.Request) {
	f.countOp("DeleteRecord")
	z, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	f.write.Lock()
	defer f.write.Unlock()
	c, ok := f.findRecord(w, r, z)
	if !ok {
		return
	}
	rr, err := fromCF(c, z, true)
	if err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "stored record: "+err.Error())
		return
	}
	ctx, cancel := backendCtx(r)
	defer cancel()
	if _, err := f.backend.DeleteRecords(ctx, z.Name+".", []libdns.Record{rr}); err != nil {
		cfFail(w, http.StatusInternalServerError, 1000, "backend: "+err.Error())
		return
	}
	if f.lostAnswer(w, lostError) {
		return
	}
	cfOK(w, map[string]string{"id": c.ID}, nil)
}
