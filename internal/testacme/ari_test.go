package testacme_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certfleet/certfleet/internal/testacme"
)

func TestRenewalInfoFollowsSetRenewalWindowAndIsRecorded(t *testing.T) {
	w := testacme.Start(t, testacme.Options{ARIRetryAfter: 2 * time.Second})
	certPEM, _, err := newClient(t, w, nil).issue("ari.example.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseLeaf(t, certPEM)
	id, err := acme.ARIUniqueIdentifier(leaf)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	if err := w.SetRenewalWindow(leaf, start, start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	before := len(w.RenewalInfoRequests())

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.ACMERoots()}}}
	defer hc.CloseIdleConnections()
	base := strings.TrimSuffix(w.DirectoryURL(), "/dir")
	resp, err := hc.Get(base + "/draft-ietf-acme-ari-03/renewalInfo/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info acme.RenewalInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if !info.SuggestedWindow.Start.Equal(start) || !info.SuggestedWindow.End.Equal(start.Add(time.Minute)) {
		t.Errorf("suggested window %v to %v, want %v to %v", info.SuggestedWindow.Start, info.SuggestedWindow.End, start, start.Add(time.Minute))
	}
	if got := resp.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (Options.ARIRetryAfter)", got)
	}
	reqs := w.RenewalInfoRequests()
	if len(reqs) != before+1 || reqs[len(reqs)-1].CertID != id {
		t.Errorf("renewal info requests %v, want one more, for %s", reqs, id)
	}
	if orders := w.Orders(); len(orders) != 1 || orders[0].Replaces != "" {
		t.Errorf("orders %+v, want one that replaces nothing", orders)
	}
}
