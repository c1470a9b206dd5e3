package apifake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/libdns/libdns"
)

const r53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

// Route53 is a fake of the Route 53 REST/XML API as aws-sdk-go-v2 speaks it,
// backed by a Backend: ListHostedZonesByName, ListResourceRecordSets
// (pagination by name and type), ChangeResourceRecordSets (CREATE, DELETE,
// UPSERT, batches validated as a whole and applied all or nothing, with the
// real API's InvalidChangeBatch errors) and GetChange (PENDING for
// SetPendingPolls polls, then INSYNC). Every request must carry an AWS SigV4
// Authorization header; with SetCredentials the signature itself is checked.
// Lists page at the real maxima (300 record sets, 100 zones) or at
// SetPageSize, whichever is smaller.
//
// Point an SDK client at it with AWS_ENDPOINT_URL_ROUTE_53 = URL() (or an
// aws.Config BaseEndpoint). Injected faults are Throttling and
// PriorRequestNotComplete (HTTP 400 with the XML error body the SDK parses),
// ServiceUnavailable (503), InternalFailure (500) and connections closed
// without an answer.
type Route53 struct {
	server
	backend Backend

	cfgMu        sync.Mutex
	accessKeyID  string
	secretKey    string
	pendingPolls int

	changesMu sync.Mutex
	changes   map[string]int // change id -> GetChange polls so far
	nextID    int
}

// NewRoute53 starts a fake Route 53 API over backend. Close it when done.
func NewRoute53(backend Backend) *Route53 {
	f := &Route53{backend: backend, pendingPolls: 1, changes: make(map[string]int)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2013-04-01/hostedzonesbyname", f.listHostedZonesByName)
	mux.HandleFunc("GET /2013-04-01/hostedzone/{id}/rrset", f.listResourceRecordSets)
	mux.HandleFunc("GET /2013-04-01/hostedzone/{id}/rrset/", f.listResourceRecordSets)
	mux.HandleFunc("POST /2013-04-01/hostedzone/{id}/rrset", f.changeResourceRecordSets)
	mux.HandleFunc("POST /2013-04-01/hostedzone/{id}/rrset/", f.changeResourceRecordSets)
	mux.HandleFunc("GET /2013-04-01/change/{id}", f.getChange)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		r53Fail(w, http.StatusNotFound, "UnknownOperationException", "unknown operation "+r.Method+" "+r.URL.Path)
	})
	f.start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.serve(mux, w, r) }), f.injectFault)
	return f
}

// SetCredentials makes the fake check the access key id and verify the
// request signature with the secret key, answering InvalidClientTokenId or
// SignatureDoesNotMatch (HTTP 403) as AWS does. Without it, any well-formed
// SigV4 Authorization header is accepted.
func (f *Route53) SetCredentials(accessKeyID, secretAccessKey string) {
	f.cfgMu.Lock()
	defer f.cfgMu.Unlock()
	f.accessKeyID, f.secretKey = accessKeyID, secretAccessKey
}

// SetPendingPolls sets how many GetChange polls of a change answer PENDING
// before INSYNC (default 1). ChangeResourceRecordSets always answers PENDING.
func (f *Route53) SetPendingPolls(n int) {
	f.cfgMu.Lock()
	defer f.cfgMu.Unlock()
	f.pendingPolls = max(n, 0)
}

// FailNext makes the next n requests fail with the given AWS error code
// ("Throttling", "PriorRequestNotComplete", "ServiceUnavailable",
// "InternalFailure", "AccessDenied", ...), with the HTTP status AWS uses for it.
func (f *Route53) FailNext(n int, code string) {
	f.failNext(n, forcedFault{code: code})
}

// HostedZoneID returns the id the fake gives zone (without "/hostedzone/").
func (f *Route53) HostedZoneID(zone string) string {
	h := sha256.Sum256([]byte(fqdn(zone)))
	return "Z" + base32.StdEncoding.EncodeToString(h[:])[:13]
}

func r53Status(code string) int {
	switch code {
	case "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "InternalFailure", "InternalError":
		return http.StatusInternalServerError
	case "AccessDenied", "InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken", "IncompleteSignature", "ExpiredToken":
		return http.StatusForbidden
	case "NoSuchHostedZone", "NoSuchChange":
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

type r53Error struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	NS        string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func requestID() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36)
}

func r53Write(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

func r53Fail(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	r53Write(w, status, r53Error{NS: r53NS, Type: typ, Code: code, Message: msg, RequestID: requestID()})
}

var (
	sigV4Header = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/route53/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$`)
)

// serve checks the request's signature before mux.
func (f *Route53) serve(mux http.Handler, w http.ResponseWriter, r *http.Request) {
	if code, msg := f.authenticate(r); code != "" {
		f.countRejected()
		r53Fail(w, r53Status(code), code, msg)
		return
	}
	mux.ServeHTTP(w, r)
}

// authenticate checks the SigV4 Authorization header; it returns an AWS
// error code and message when the request is refused.
func (f *Route53) authenticate(r *http.Request) (code, msg string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "MissingAuthenticationToken", "Missing Authentication Token"
	}
	m := sigV4Header.FindStringSubmatch(auth)
	if m == nil || r.Header.Get("X-Amz-Date") == "" {
		return "IncompleteSignature", "Authorization header requires a SigV4 Credential, SignedHeaders and Signature, and X-Amz-Date must be set"
	}
	f.cfgMu.Lock()
	akid, secret := f.accessKeyID, f.secretKey
	f.cfgMu.Unlock()
	if akid == "" {
		return "", ""
	}
	if m[1] != akid {
		return "InvalidClientTokenId", "The security token included in the request is invalid."
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return "IncompleteSignature", "reading the request body: " + err.Error()
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if !validSignature(r, body, m, secret) {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return "", ""
}

// validSignature signs a copy of r made of its signed headers with secret
// and compares the signatures.
func validSignature(r *http.Request, body []byte, m []string, secret string) bool {
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	c, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return false
	}
	c.Host = r.Host
	c.ContentLength = int64(len(body))
	for _, h := range strings.Split(m[4], ";") {
		if h == "host" || h == "content-length" {
			continue
		}
		c.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: m[1], SecretAccessKey: secret, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, c, hex.EncodeToString(sum[:]), "route53", m[3], when); err != nil {
		return false
	}
	got := sigV4Header.FindStringSubmatch(c.Header.Get("Authorization"))
	return got != nil && got[5] == m[5]
}

func (f *Route53) injectFault(w http.ResponseWriter, r *http.Request, kind int, forced forcedFault) {
	switch kind {
	case -1:
		r53Fail(w, r53Status(forced.code), forced.code, "injected "+forced.code)
	case faultThrottle:
		r53Fail(w, http.StatusBadRequest, "Throttling", "Rate exceeded")
	case faultServerError:
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "An internal error occurred.")
	case faultBadGateway:
		if r.Method == http.MethodPost {
			r53Fail(w, http.StatusBadRequest, "PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request.")
		} else {
			r53Fail(w, http.StatusBadRequest, "Throttling", "Rate exceeded")
		}
	case faultUnavailable:
		r53Fail(w, http.StatusServiceUnavailable, "ServiceUnavailable", "Service Unavailable")
	default:
		hangUp(w)
	}
}

// reversed returns name's labels in reverse order, the sort key Route 53
// lists zones and record sets by.
func reversed(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// r53Name returns a name in Route 53's form: lower case, trailing dot, and
// octal escapes for characters other than letters, digits, '-', '_' and '.'.
func r53Name(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, ".")) + "."
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "\\%03o", c)
		}
	}
	return b.String()
}

// plainName undoes r53Name's escapes and lower-cases name, with a trailing dot.
func plainName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] == '\\' && i+3 < len(name) {
			if n, err := strconv.ParseUint(name[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(name[i])
	}
	return fqdn(b.String())
}

type r53HostedZone struct {
	ID                     string `xml:"Id"`
	Name                   string `xml:"Name"`
	CallerReference        string `xml:"CallerReference"`
	PrivateZone            bool   `xml:"Config>PrivateZone"`
	ResourceRecordSetCount int    `xml:"ResourceRecordSetCount"`
}

func (f *Route53) hostedZones(r *http.Request) ([]r53HostedZone, error) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	zs, err := f.backend.ListZones(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]r53HostedZone, 0, len(zs))
	for _, z := range zs {
		name := fqdn(z.Name)
		out = append(out, r53HostedZone{ID: "/hostedzone/" + f.HostedZoneID(name), Name: r53Name(name), CallerReference: "apifake-" + name})
	}
	slices.SortFunc(out, func(a, b r53HostedZone) int { return strings.Compare(reversed(a.Name), reversed(b.Name)) })
	return out, nil
}

// zoneByID finds the hosted zone named in the request path.
func (f *Route53) zoneByID(w http.ResponseWriter, r *http.Request) (string, bool) {
	zs, err := f.hostedZones(r)
	if err != nil {
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "backend: "+err.Error())
		return "", false
	}
	id := strings.TrimPrefix(r.PathValue("id"), "/hostedzone/")
	for _, z := range zs {
		if z.ID == "/hostedzone/"+id {
			return plainName(z.Name), true
		}
	}
	r53Fail(w, http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: "+id)
	return "", false
}

func maxItems(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("maxitems")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("maxitems must be a positive integer")
	}
	return min(n, def), nil
}

func (f *Route53) listHostedZonesByName(w http.ResponseWriter, r *http.Request) {
	f.countOp("ListHostedZonesByName")
	type response struct {
		XMLName          xml.Name        `xml:"ListHostedZonesByNameResponse"`
		NS               string          `xml:"xmlns,attr"`
		HostedZones      []r53HostedZone `xml:"HostedZones>HostedZone"`
		DNSName          string          `xml:"DNSName,omitempty"`
		HostedZoneID     string          `xml:"HostedZoneId,omitempty"`
		IsTruncated      bool            `xml:"IsTruncated"`
		NextDNSName      string          `xml:"NextDNSName,omitempty"`
		NextHostedZoneID string          `xml:"NextHostedZoneId,omitempty"`
		MaxItems         int             `xml:"MaxItems"`
	}
	q := r.URL.Query()
	dnsName, zoneID := q.Get("dnsname"), q.Get("hostedzoneid")
	if zoneID != "" && dnsName == "" {
		r53Fail(w, http.StatusBadRequest, "InvalidInput", "hostedzoneid requires dnsname")
		return
	}
	if strings.ContainsAny(dnsName, " \t\r\n") {
		r53Fail(w, http.StatusBadRequest, "InvalidDomainName", "Invalid domain name: "+dnsName)
		return
	}
	limit, err := maxItems(r, min(100, f.pageSizeOr(100)))
	if err != nil {
		r53Fail(w, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	zs, err := f.hostedZones(r)
	if err != nil {
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "backend: "+err.Error())
		return
	}
	resp := response{NS: r53NS, MaxItems: limit}
	if dnsName != "" {
		resp.DNSName = r53Name(dnsName)
		resp.HostedZoneID = zoneID
		start := reversed(r53Name(dnsName))
		zs = slices.DeleteFunc(zs, func(z r53HostedZone) bool { return reversed(z.Name) < start })
		if zoneID != "" {
			if i := slices.IndexFunc(zs, func(z r53HostedZone) bool { return strings.HasSuffix(z.ID, "/"+zoneID) }); i >= 0 {
				zs = zs[i:]
			}
		}
	}
	if len(zs) > limit {
		resp.IsTruncated = true
		resp.NextDNSName = zs[limit].Name
		resp.NextHostedZoneID = strings.TrimPrefix(zs[limit].ID, "/hostedzone/")
		zs = zs[:limit]
	}
	resp.HostedZones = zs
	r53Write(w, http.StatusOK, resp)
}

// r53Set is a resource record set on the wire.
type r53Set struct {
	Name          string        `xml:"Name"`
	Type          string        `xml:"Type"`
	SetIdentifier string        `xml:"SetIdentifier,omitempty"`
	TTL           *int64        `xml:"TTL,omitempty"`
	Records       []r53Value    `xml:"ResourceRecords>ResourceRecord"`
	AliasTarget   *r53AliasInfo `xml:"AliasTarget,omitempty"`
}

type r53Value struct {
	Value string `xml:"Value"`
}

type r53AliasInfo struct {
	HostedZoneID string `xml:"HostedZoneId"`
}

type setKey struct{ name, typ string } // plain name with dot, type

// recordSets returns the zone's records grouped into record sets, sorted
// as Route 53 lists them.
func (f *Route53) recordSets(r *http.Request, zone string) ([]r53Set, map[setKey][]libdns.RR, error) {
	ctx, cancel := backendCtx(r)
	defer cancel()
	recs, err := f.backend.GetRecords(ctx, zone)
	if err != nil {
		return nil, nil, err
	}
	groups := make(map[setKey][]libdns.RR)
	var keys []setKey
	for _, rec := range recs {
		rr := rec.RR()
		k := setKey{fqdn(libdns.AbsoluteName(rr.Name, zone)), rr.Type}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], rr)
	}
	slices.SortFunc(keys, func(a, b setKey) int {
		if c := strings.Compare(reversed(a.name), reversed(b.name)); c != 0 {
			return c
		}
		return strings.Compare(a.typ, b.typ)
	})
	sets := make([]r53Set, 0, len(keys))
	for _, k := range keys {
		rrs := groups[k]
		ttl := int64(rrs[0].TTL / time.Second)
		s := r53Set{Name: r53Name(k.name), Type: k.typ, TTL: &ttl}
		for _, rr := range rrs {
			s.Records = append(s.Records, r53Value{wireValue(rr)})
		}
		sets = append(sets, s)
	}
	return sets, groups, nil
}

// wireValue returns a record's value as Route 53 shows it.
func wireValue(rr libdns.RR) string {
	if rr.Type != "TXT" && rr.Type != "SPF" {
		return rr.Data
	}
	var parts []string
	data := rr.Data
	for {
		n := min(len(data), 255)
		parts = append(parts, quoteTXT(data[:n]))
		data = data[n:]
		if data == "" {
			break
		}
	}
	return strings.Join(parts, " ")
}

func quoteTXT(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 32 || c >= 127:
			fmt.Fprintf(&b, "\\%03o", c)
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// parseTXT reads a TXT value: one or more quoted character strings, each of
// at most 255 bytes, and returns their concatenation, or the problem that
// Route 53 reports ("InvalidCharacterString", ...).
func parseTXT(v string) (text, problem string) {
	var out strings.Builder
	i, n := 0, 0
	for {
		for i < len(v) && v[i] == ' ' {
			i++
		}
		if i == len(v) {
			break
		}
		if v[i] != '"' {
			return "", "InvalidCharacterString (Value should be enclosed in quotation marks)"
		}
		i++
		size := 0
		for {
			if i >= len(v) {
				return "", "UnbalancedQuotes"
			}
			c := v[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' && i+1 < len(v) {
				if i+3 < len(v) {
					if o, err := strconv.ParseUint(v[i+1:i+4], 8, 8); err == nil {
						out.WriteByte(byte(o))
						i += 4
						size++
						continue
					}
				}
				out.WriteByte(v[i+1])
				i += 2
				size++
				continue
			}
			out.WriteByte(c)
			i++
			size++
		}
		if size > 255 {
			return "", "TXTRDATATooLong"
		}
		n++
	}
	if n == 0 {
		return "", "EmptyTXT"
	}
	return out.String(), ""
}

func (f *Route53) listResourceRecordSets(w http.ResponseWriter, r *http.Request) {
	f.countOp("ListResourceRecordSets")
	type response struct {
		XMLName              xml.Name `xml:"ListResourceRecordSetsResponse"`
		NS                   string   `xml:"xmlns,attr"`
		Sets                 []r53Set `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated          bool     `xml:"IsTruncated"`
		NextRecordName       string   `xml:"NextRecordName,omitempty"`
		NextRecordType       string   `xml:"NextRecordType,omitempty"`
		NextRecordIdentifier string   `xml:"NextRecordIdentifier,omitempty"`
		MaxItems             int      `xml:"MaxItems"`
	}
	zone, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	startName, startType := q.Get("name"), q.Get("type")
	if startType != "" && startName == "" {
		r53Fail(w, http.StatusBadRequest, "InvalidInput", "The input is not valid: type requires name")
		return
	}
	limit, err := maxItems(r, min(300, f.pageSizeOr(300)))
	if err != nil {
		r53Fail(w, http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	sets, _, err := f.recordSets(r, zone)
	if err != nil {
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "backend: "+err.Error())
		return
	}
	if startName != "" {
		start := reversed(plainName(startName))
		sets = slices.DeleteFunc(sets, func(s r53Set) bool {
			n := reversed(plainName(s.Name))
			return n < start || n == start && startType != "" && s.Type < startType
		})
	}
	resp := response{NS: r53NS, MaxItems: limit}
	if len(sets) > limit {
		resp.IsTruncated = true
		resp.NextRecordName = sets[limit].Name
		resp.NextRecordType = sets[limit].Type
		sets = sets[:limit]
	}
	resp.Sets = sets
	r53Write(w, http.StatusOK, resp)
}

type r53ChangeRequest struct {
	XMLName xml.Name `xml:"ChangeResourceRecordSetsRequest"`
	Comment string   `xml:"ChangeBatch>Comment"`
	Changes []struct {
		Action string `xml:"Action"`
		Set    r53Set `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

type r53ChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

// applied is one record set change, validated, ready for the backend.
type applied struct {
	action string
	key    setKey
	old    []libdns.RR
	new    []libdns.RR
}

func (f *Route53) changeResourceRecordSets(w http.ResponseWriter, r *http.Request) {
	f.countOp("ChangeResourceRecordSets")
	zone, ok := f.zoneByID(w, r)
	if !ok {
		return
	}
	var req r53ChangeRequest
	if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		r53Fail(w, http.StatusBadRequest, "InvalidInput", "could not parse the request body: "+err.Error())
		return
	}
	if len(req.Changes) == 0 {
		r53Fail(w, http.StatusBadRequest, "InvalidInput", "ChangeBatch must contain at least one change")
		return
	}
	f.write.Lock()
	defer f.write.Unlock()
	_, current, err := f.recordSets(r, zone)
	if err != nil {
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "backend: "+err.Error())
		return
	}
	var msgs []string
	var plan []applied
	seen := make(map[setKey]bool)
	for _, c := range req.Changes {
		a, msg, code := f.validateChange(zone, c.Action, c.Set, current, seen)
		if code != "" {
			r53Fail(w, http.StatusBadRequest, code, msg)
			return
		}
		if msg != "" {
			msgs = append(msgs, msg)
			continue
		}
		plan = append(plan, a)
	}
	if len(msgs) > 0 {
		r53Fail(w, http.StatusBadRequest, "InvalidChangeBatch", "["+strings.Join(msgs, ", ")+"]")
		return
	}
	if err := f.apply(r, zone, plan); err != nil {
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "backend: "+err.Error())
		return
	}
	if f.lostAnswer(w, func(w http.ResponseWriter) {
		r53Fail(w, http.StatusInternalServerError, "InternalFailure", "An internal error occurred.")
	}) {
		return
	}
	f.changesMu.Lock()
	f.nextID++
	id := fmt.Sprintf("C%012d%s", f.nextID, strings.ToUpper(strconv.FormatInt(time.Now().UnixNano()%1e6, 36)))
	f.changes[id] = 0
	f.changesMu.Unlock()
	type response struct {
		XMLName    xml.Name      `xml:"ChangeResourceRecordSetsResponse"`
		NS         string        `xml:"xmlns,attr"`
		ChangeInfo r53ChangeInfo `xml:"ChangeInfo"`
	}
	r53Write(w, http.StatusOK, response{NS: r53NS, ChangeInfo: r53ChangeInfo{
		ID: "/change/" + id, Status: "PENDING", SubmittedAt: time.Now().UTC().Format(time.RFC3339), Comment: req.Comment,
	}})
}

// validateChange checks one change against the zone's current record sets
// (updated as the batch goes, so later changes see earlier ones). It returns
// an InvalidChangeBatch message, or an error code and message for input the
// API refuses outright, or the change to apply.
func (f *Route53) validateChange(zone, action string, s r53Set, current map[setKey][]libdns.RR, seen map[setKey]bool) (a applied, msg, code string) {
	name := plainName(s.Name)
	typ := strings.ToUpper(s.Type)
	key := setKey{name, typ}
	desc := fmt.Sprintf("[name='%s', type='%s']", r53Name(name), typ)
	switch {
	case action != "CREATE" && action != "DELETE" && action != "UPSERT":
		return a, "Invalid Action: " + action, "InvalidInput"
	case s.Name == "" || typ == "":
		return a, "Name and Type are required in a ResourceRecordSet", "InvalidInput"
	case s.AliasTarget != nil || s.SetIdentifier != "":
		return a, "apifake supports only simple record sets (no alias or routing policy)", "InvalidInput"
	case s.TTL == nil:
		return a, "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with " + desc, "InvalidInput"
	case len(s.Records) == 0:
		return a, "Invalid request: ResourceRecords must not be empty in Change with " + desc, "InvalidInput"
	case *s.TTL < 0 || *s.TTL > 2147483647:
		return a, "TTL out of range in Change with " + desc, "InvalidInput"
	}
	if name != zone && !strings.HasSuffix(name, "."+zone) {
		return a, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", r53Name(name), r53Name(zone)), ""
	}
	if seen[key] {
		return a, "The request contains an invalid set of changes for a resource record set '" + typ + " " + r53Name(name) + "'", ""
	}
	seen[key] = true
	rel := libdns.RelativeName(name, zone)
	var rrs []libdns.RR
	values := make(map[string]bool)
	for _, v := range s.Records {
		data := v.Value
		if typ == "TXT" || typ == "SPF" {
			t, problem := parseTXT(v.Value)
			if problem != "" {
				return a, fmt.Sprintf("Invalid Resource Record: 'FATAL problem: %s encountered with '%s''", problem, v.Value), ""
			}
			data = t
		}
		if values[data] {
			return a, fmt.Sprintf("Duplicate Resource Record: '%s'", v.Value), ""
		}
		values[data] = true
		rrs = append(rrs, libdns.RR{Name: rel, Type: typ, TTL: time.Duration(*s.TTL) * time.Second, Data: data})
	}
	old := current[key]
	switch action {
	case "CREATE":
		if len(old) > 0 {
			return a, "Tried to create resource record set " + desc + " but it already exists", ""
		}
		current[key] = rrs
	case "DELETE":
		if len(old) == 0 {
			return a, "Tried to delete resource record set " + desc + " but it was not found", ""
		}
		if !sameSet(old, rrs) {
			return a, "Tried to delete resource record set " + desc + " but the values provided do not match the current values", ""
		}
		delete(current, key)
	case "UPSERT":
		current[key] = rrs
	}
	return applied{action: action, key: key, old: old, new: rrs}, "", ""
}

// sameSet reports whether two record sets have the same TTL and values.
func sameSet(a, b []libdns.RR) bool {
	if len(a) != len(b) || a[0].TTL != b[0].TTL {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y libdns.RR) bool { return x.Data == y.Data }) {
			return false
		}
	}
	return true
}

func records(rrs []libdns.RR) []libdns.Record {
	out := make([]libdns.Record, len(rrs))
	for i, rr := range rrs {
		out[i] = rr
	}
	return out
}

// apply writes validated changes to the backend.
func (f *Route53) apply(r *http.Request, zone string, plan []applied) error {
	ctx, cancel := backendCtx(r)
	defer cancel()
	setter, canSet := f.backend.(libdns.RecordSetter)
	for _, a := range plan {
		var err error
		switch {
		case a.action == "DELETE":
			_, err = f.backend.DeleteRecords(ctx, zone, records(a.old))
		case canSet:
			_, err = setter.SetRecords(ctx, zone, records(a.new))
		default:
			if len(a.old) > 0 {
				if _, err = f.backend.DeleteRecords(ctx, zone, records(a.old)); err != nil {
					break
				}
			}
			_, err = f.backend.AppendRecords(ctx, zone, records(a.new))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *Route53) getChange(w http.ResponseWriter, r *http.Request) {
	f.countOp("GetChange")
	id := strings.TrimPrefix(r.PathValue("id"), "/change/")
	f.cfgMu.Lock()
	pending := f.pendingPolls
	f.cfgMu.Unlock()
	f.changesMu.Lock()
	polls, ok := f.changes[id]
	if ok {
		f.changes[id] = polls + 1
	}
	f.changesMu.Unlock()
	if !ok {
		r53Fail(w, http.StatusNotFound, "NoSuchChange", "A change with the specified change ID does not exist: "+id)
		return
	}
	status := "INSYNC"
	if polls < pending {
		status = "PENDING"
	}
	type response struct {
		XMLName    xml.Name      `xml:"GetChangeResponse"`
		NS         string        `xml:"xmlns,attr"`
		ChangeInfo r53ChangeInfo `xml:"ChangeInfo"`
	}
	r53Write(w, http.StatusOK, response{NS: r53NS, ChangeInfo: r53ChangeInfo{
		ID: "/change/" + id, Status: status, SubmittedAt: time.Now().UTC().Format(time.RFC3339),
	}})
}
