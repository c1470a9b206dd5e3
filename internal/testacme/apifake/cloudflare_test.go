package apifake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	libdnscf "github.com/libdns/cloudflare"
	"github.com/libdns/libdns"
)

func newCloudflare(t *testing.T, token string, zones ...string) (*Cloudflare, *Memory) {
	t.Helper()
	mem := NewMemory(zones...)
	f := NewCloudflare(mem, token)
	t.Cleanup(f.Close)
	return f, mem
}

func txt(name, text string) libdns.TXT {
	return libdns.TXT{Name: name, Text: text, TTL: 120 * time.Second}
}

func TestCloudflareAppendsListsAndDeletesTXTWithRealLibdns(t *testing.T) {
	f, mem := newCloudflare(t, "tok", "example.com.")
	p := &libdnscf.Provider{APIToken: "tok", HTTPClient: f.Client()}
	ctx := context.Background()

	added, err := p.AppendRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "one"), txt("_acme-challenge", "two")})
	if err != nil {
		t.Fatalf("AppendRecords: %v", err)
	}
	if got := TXTValues(added, "_acme-challenge"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("AppendRecords returned %v", got)
	}
	got, err := p.GetRecords(ctx, "example.com.")
	if err != nil {
		t.Fatalf("GetRecords: %v", err)
	}
	if v := TXTValues(got, "_acme-challenge"); !slices.Equal(v, []string{"one", "two"}) {
		t.Fatalf("GetRecords = %v, want [one two]", v)
	}
	if _, err := p.DeleteRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "one")}); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	inMem, _ := mem.GetRecords(ctx, "example.com.")
	if v := TXTValues(inMem, "_acme-challenge"); !slices.Equal(v, []string{"two"}) {
		t.Fatalf("backend holds %v after delete, want [two]", v)
	}
	st := f.Stats()
	if st.Ops["CreateRecord"] != 2 || st.Ops["DeleteRecord"] != 1 || st.Ops["ListZones"] != 1 {
		t.Errorf("Ops = %v, want 2 creates, 1 delete, 1 zone lookup (cached)", st.Ops)
	}
}

func TestCloudflarePaginatesRecordLists(t *testing.T) {
	f, _ := newCloudflare(t, "tok", "example.com.")
	f.SetPageSize(2)
	p := &libdnscf.Provider{APIToken: "tok", HTTPClient: f.Client()}
	ctx := context.Background()
	var recs []libdns.Record
	for _, v := range []string{"a", "b", "c", "d", "e"} {
		recs = append(recs, txt("r"+v, v))
	}
	if _, err := p.AppendRecords(ctx, "example.com", recs); err != nil {
		t.Fatal(err)
	}
	f.ResetStats()
	got, err := p.GetRecords(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("GetRecords returned %d records over pages, want 5", len(got))
	}
	if n := f.Stats().Ops["ListRecords"]; n != 3 {
		t.Errorf("ListRecords calls = %d, want 3 pages of 2", n)
	}
}

func TestCloudflareChecksBearerToken(t *testing.T) {
	f, _ := newCloudflare(t, "right", "example.com.")
	f.SetZoneToken("zoneread")
	ctx := context.Background()
	cases := []struct {
		name     string
		p        *libdnscf.Provider
		wantErr  string
		rejected int
	}{
		{"wrong token", &libdnscf.Provider{APIToken: "wrong"}, "HTTP 403", 1},
		{"zone token used for records", &libdnscf.Provider{APIToken: "zoneread"}, "HTTP 403", 1},
		{"zone token for lookup, API token for records", &libdnscf.Provider{APIToken: "right", ZoneToken: "zoneread"}, "", 0},
		{"malformed token", &libdnscf.Provider{APIToken: "a b"}, "HTTP 400", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.ResetStats()
			tc.p.HTTPClient = f.Client()
			_, err := tc.p.AppendRecords(ctx, "example.com", []libdns.Record{txt("x", tc.name)})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("AppendRecords: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("AppendRecords error = %v, want %q", err, tc.wantErr)
			}
			if got := f.Stats().Rejected; got != tc.rejected {
				t.Errorf("Rejected = %d, want %d", got, tc.rejected)
			}
		})
	}
}

func TestCloudflareRefusesWhatTheRealAPIRefuses(t *testing.T) {
	f, _ := newCloudflare(t, "tok", "example.com.")
	p := &libdnscf.Provider{APIToken: "tok", HTTPClient: f.Client()}
	ctx := context.Background()
	if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("dup", "v")}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		zone string
		rec  libdns.Record
		want string
	}{
		{"identical record", "example.com", txt("dup", "v"), "81058"},
		{"TTL below 60 s", "example.com", libdns.TXT{Name: "short", Text: "v", TTL: 30 * time.Second}, "9021"},
		{"unknown zone", "other.org", txt("x", "v"), "expected 1 zone, got 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.AppendRecords(ctx, tc.zone, []libdns.Record{tc.rec})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCloudflareSetRecordsPatchesExistingRecord(t *testing.T) {
	f, mem := newCloudflare(t, "tok", "example.com.")
	p := &libdnscf.Provider{APIToken: "tok", HTTPClient: f.Client()}
	ctx := context.Background()
	a := libdns.Address{Name: "www", IP: mustAddr(t, "192.0.2.1"), TTL: 300 * time.Second}
	if _, err := p.SetRecords(ctx, "example.com", []libdns.Record{a}); err != nil {
		t.Fatal(err)
	}
	a.IP = mustAddr(t, "192.0.2.2")
	if _, err := p.SetRecords(ctx, "example.com", []libdns.Record{a}); err != nil {
		t.Fatal(err)
	}
	recs, _ := mem.GetRecords(ctx, "example.com.")
	if len(recs) != 1 || recs[0].RR().Data != "192.0.2.2" {
		t.Fatalf("backend = %v, want one A 192.0.2.2", recs)
	}
	if n := f.Stats().Ops["PatchRecord"]; n != 1 {
		t.Errorf("PatchRecord calls = %d, want 1", n)
	}
}

func TestCloudflareInjectsThrottlingWithRetryAfter(t *testing.T) {
	f, _ := newCloudflare(t, "tok", "example.com.")
	f.SetFaults(Faults{RetryAfter: 1500 * time.Millisecond})
	f.FailNext(1, http.StatusTooManyRequests)
	req, _ := http.NewRequest(http.MethodGet, "https://api.cloudflare.com/client/v4/zones", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Errors []cfError `json:"errors"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || len(env.Errors) != 1 || env.Errors[0].Code != 971 {
		t.Fatalf("got %d Retry-After=%q errors=%v, want 429, \"2\", code 971", resp.StatusCode, resp.Header.Get("Retry-After"), env.Errors)
	}
	if st := f.Stats(); st.Faults != 1 || st.Requests != 1 {
		t.Errorf("Stats = %+v, want 1 request, 1 fault", st)
	}
}

// faultPattern returns which of n zone listings failed.
func faultPattern(t *testing.T, f *Cloudflare, n int) []bool {
	t.Helper()
	var out []bool
	for range n {
		req, _ := http.NewRequest(http.MethodGet, "https://api.cloudflare.com/client/v4/zones", nil)
		req.Header.Set("Authorization", "Bearer tok")
		req.Close = true // a hung-up connection must not be retried by the transport
		resp, err := f.Client().Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		out = append(out, err != nil || resp.StatusCode != http.StatusOK)
	}
	return out
}

func TestCloudflareFaultsAreSeededAndCounted(t *testing.T) {
	f1, _ := newCloudflare(t, "tok", "example.com.")
	f2, _ := newCloudflare(t, "tok", "example.com.")
	f1.SetFaults(Faults{Rate: 0.5, Seed: 7})
	f2.SetFaults(Faults{Rate: 0.5, Seed: 7})
	p1, p2 := faultPattern(t, f1, 40), faultPattern(t, f2, 40)
	if !slices.Equal(p1, p2) {
		t.Fatalf("same seed gave different fault patterns:\n%v\n%v", p1, p2)
	}
	failed := 0
	for _, b := range p1 {
		if b {
			failed++
		}
	}
	if failed == 0 || failed == 40 {
		t.Fatalf("%d of 40 requests failed at rate 0.5", failed)
	}
	if st := f1.Stats(); st.Faults != failed || st.Requests != 40 {
		t.Errorf("Stats = %+v, want %d faults of 40 requests", st, failed)
	}
}

func TestCloudflareLostWriteIsApplied(t *testing.T) {
	f, mem := newCloudflare(t, "tok", "example.com.")
	p := &libdnscf.Provider{APIToken: "tok", HTTPClient: f.Client()}
	ctx := context.Background()
	if _, err := p.ListZones(ctx); err != nil { // warm up the zone list
		t.Fatal(err)
	}
	f.SetFaults(Faults{LostRate: 1, Seed: 1})
	if _, err := p.AppendRecords(ctx, "example.com", []libdns.Record{txt("lost", "v")}); err == nil {
		t.Fatal("AppendRecords succeeded; want the lost answer to be an error")
	}
	recs, _ := mem.GetRecords(ctx, "example.com.")
	if v := TXTValues(recs, "lost"); !slices.Equal(v, []string{"v"}) {
		t.Fatalf("backend holds %v, want the lost write applied", v)
	}
}

func TestCloudflareTransportRefusesOtherHosts(t *testing.T) {
	f, _ := newCloudflare(t, "tok")
	resp, err := f.Client().Get("https://example.com/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("request to example.com was sent")
	}
	if f.Stats().Requests != 0 {
		t.Error("the fake received a request for another host")
	}
}
