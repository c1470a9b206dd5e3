package apifake

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	r53 "github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

const (
	testKeyID  = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

func newRoute53(t *testing.T, zones ...string) (*Route53, *Memory) {
	t.Helper()
	mem := NewMemory(zones...)
	f := NewRoute53(mem)
	t.Cleanup(f.Close)
	return f, mem
}

// sdk returns an aws-sdk-go-v2 Route 53 client for the fake, without retries.
func sdk(f *Route53, creds aws.CredentialsProvider) *r53.Client {
	return r53.New(r53.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL()),
		Credentials:  creds,
		Retryer:      aws.NopRetryer{},
	})
}

func static(secret string) aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(testKeyID, secret, "")
}

func change(action types.ChangeAction, name string, ttl int64, values ...string) types.Change {
	var rrs []types.ResourceRecord
	for _, v := range values {
		rrs = append(rrs, types.ResourceRecord{Value: aws.String(v)})
	}
	return types.Change{Action: action, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String(name), Type: types.RRTypeTxt, TTL: aws.Int64(ttl), ResourceRecords: rrs,
	}}
}

func apply(ctx context.Context, c *r53.Client, zoneID string, changes ...types.Change) (*r53.ChangeResourceRecordSetsOutput, error) {
	return c.ChangeResourceRecordSets(ctx, &r53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID), ChangeBatch: &types.ChangeBatch{Changes: changes},
	})
}

func values(t *testing.T, ctx context.Context, c *r53.Client, zoneID, name string) []string {
	t.Helper()
	out, err := c.ListResourceRecordSets(ctx, &r53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID)})
	if err != nil {
		t.Fatalf("ListResourceRecordSets: %v", err)
	}
	var vs []string
	for _, s := range out.ResourceRecordSets {
		if aws.ToString(s.Name) == name {
			for _, r := range s.ResourceRecords {
				vs = append(vs, aws.ToString(r.Value))
			}
		}
	}
	slices.Sort(vs)
	return vs
}

func apiCode(err error) string {
	var api interface{ ErrorCode() string } // smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestRoute53FindsHostedZoneByName(t *testing.T) {
	f, _ := newRoute53(t, "example.com.", "example.org.")
	out, err := sdk(f, static(testSecret)).ListHostedZonesByName(context.Background(), &r53.ListHostedZonesByNameInput{
		DNSName: aws.String("example.com"), MaxItems: aws.Int32(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.HostedZones) != 1 || aws.ToString(out.HostedZones[0].Name) != "example.com." ||
		aws.ToString(out.HostedZones[0].Id) != "/hostedzone/"+f.HostedZoneID("example.com") || !out.IsTruncated {
		t.Fatalf("got %+v", out)
	}
}

func TestRoute53ChangesAreValidatedAndAtomic(t *testing.T) {
	f, mem := newRoute53(t, "example.com.")
	c := sdk(f, static(testSecret))
	ctx := context.Background()
	zid := f.HostedZoneID("example.com")
	name := "_acme-challenge.example.com."

	if _, err := apply(ctx, c, zid, change(types.ChangeActionUpsert, name, 60, `"one"`, `"two"`)); err != nil {
		t.Fatalf("UPSERT: %v", err)
	}
	if got := values(t, ctx, c, zid, name); !slices.Equal(got, []string{`"one"`, `"two"`}) {
		t.Fatalf("values = %v", got)
	}
	cases := []struct {
		name    string
		changes []types.Change
		want    string
	}{
		{"create existing", []types.Change{change(types.ChangeActionCreate, name, 60, `"x"`)}, "already exists"},
		{"delete with other values", []types.Change{change(types.ChangeActionDelete, name, 60, `"one"`)}, "do not match"},
		{"delete with other TTL", []types.Change{change(types.ChangeActionDelete, name, 300, `"one"`, `"two"`)}, "do not match"},
		{"delete missing", []types.Change{change(types.ChangeActionDelete, "other.example.com.", 60, `"x"`)}, "not found"},
		{"duplicate values", []types.Change{change(types.ChangeActionUpsert, name, 60, `"one"`, `"one"`)}, "Duplicate Resource Record"},
		{"unquoted TXT", []types.Change{change(types.ChangeActionUpsert, name, 60, `one`)}, "quotation marks"},
		{"outside the zone", []types.Change{change(types.ChangeActionUpsert, "evil.org.", 60, `"x"`)}, "not permitted in zone"},
		{"batch with one bad change", []types.Change{
			change(types.ChangeActionUpsert, "ok.example.com.", 60, `"x"`),
			change(types.ChangeActionCreate, name, 60, `"x"`),
		}, "already exists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := apply(ctx, c, zid, tc.changes...)
			var icb *types.InvalidChangeBatch
			if !errors.As(err, &icb) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want InvalidChangeBatch containing %q", err, tc.want)
			}
		})
	}
	recs, _ := mem.GetRecords(ctx, "example.com")
	if len(recs) != 2 {
		t.Fatalf("backend has %d records after refused changes, want the 2 from the UPSERT", len(recs))
	}
	if _, err := apply(ctx, c, zid, change(types.ChangeActionDelete, name, 60, `"two"`, `"one"`)); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if recs, _ := mem.GetRecords(ctx, "example.com"); len(recs) != 0 {
		t.Fatalf("backend has %v after DELETE", recs)
	}
}

func TestRoute53LongTXTValuesAreSplitAndJoined(t *testing.T) {
	f, mem := newRoute53(t, "example.com.")
	c := sdk(f, static(testSecret))
	ctx := context.Background()
	long := strings.Repeat("a", 255) + `"\` + strings.Repeat("b", 40)
	wire := `"` + strings.Repeat("a", 255) + `" "\"\\` + strings.Repeat("b", 40) + `"`
	if _, err := apply(ctx, c, f.HostedZoneID("example.com"), change(types.ChangeActionUpsert, "long.example.com", 60, wire)); err != nil {
		t.Fatal(err)
	}
	recs, _ := mem.GetRecords(ctx, "example.com")
	if len(recs) != 1 || recs[0].RR().Data != long {
		t.Fatalf("backend = %v, want the joined string", recs)
	}
	want := `"` + strings.Repeat("a", 255) + `" "\"\\` + strings.Repeat("b", 40) + `"`
	if got := values(t, ctx, c, f.HostedZoneID("example.com"), "long.example.com."); !slices.Equal(got, []string{want}) {
		t.Fatalf("listed %q, want %q", got, want)
	}
}

func TestRoute53PaginatesRecordSets(t *testing.T) {
	f, _ := newRoute53(t, "example.com.")
	f.SetPageSize(2)
	c := sdk(f, static(testSecret))
	ctx := context.Background()
	zid := f.HostedZoneID("example.com")
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if _, err := apply(ctx, c, zid, change(types.ChangeActionCreate, n+".example.com", 60, `"v"`)); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	in := &r53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zid), MaxItems: aws.Int32(1000)}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		out, err := c.ListResourceRecordSets(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.ResourceRecordSets {
			names = append(names, aws.ToString(s.Name))
		}
		if !out.IsTruncated {
			break
		}
		in.StartRecordName, in.StartRecordType = out.NextRecordName, out.NextRecordType
	}
	want := []string{"a.example.com.", "b.example.com.", "c.example.com.", "d.example.com.", "e.example.com."}
	if !slices.Equal(names, want) {
		t.Fatalf("listed %v, want %v", names, want)
	}
}

func TestRoute53ChangeIsPendingThenInSync(t *testing.T) {
	f, _ := newRoute53(t, "example.com.")
	c := sdk(f, static(testSecret))
	ctx := context.Background()
	out, err := apply(ctx, c, f.HostedZoneID("example.com"), change(types.ChangeActionUpsert, "x.example.com", 60, `"v"`))
	if err != nil {
		t.Fatal(err)
	}
	if out.ChangeInfo.Status != types.ChangeStatusPending {
		t.Fatalf("change status %s, want PENDING", out.ChangeInfo.Status)
	}
	var got []types.ChangeStatus
	for range 2 {
		gc, err := c.GetChange(ctx, &r53.GetChangeInput{Id: out.ChangeInfo.Id})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, gc.ChangeInfo.Status)
	}
	if !slices.Equal(got, []types.ChangeStatus{types.ChangeStatusPending, types.ChangeStatusInsync}) {
		t.Fatalf("GetChange polls = %v, want PENDING then INSYNC", got)
	}
}

func TestRoute53ChecksSignature(t *testing.T) {
	f, _ := newRoute53(t, "example.com.")
	ctx := context.Background()
	list := func(creds aws.CredentialsProvider) error {
		_, err := sdk(f, creds).ListHostedZonesByName(ctx, &r53.ListHostedZonesByNameInput{})
		return err
	}
	if err := list(aws.AnonymousCredentials{}); apiCode(err) != "MissingAuthenticationToken" {
		t.Fatalf("unsigned request: %v, want MissingAuthenticationToken", err)
	}
	if err := list(static("wrong")); err != nil {
		t.Fatalf("without SetCredentials any signature passes: %v", err)
	}
	f.SetCredentials(testKeyID, testSecret)
	if err := list(static("wrong")); apiCode(err) != "SignatureDoesNotMatch" {
		t.Fatalf("wrong secret: %v, want SignatureDoesNotMatch", err)
	}
	if err := list(credentials.NewStaticCredentialsProvider("AKIAOTHERKEY0000000", testSecret, "")); apiCode(err) != "InvalidClientTokenId" {
		t.Fatalf("wrong key id: %v, want InvalidClientTokenId", err)
	}
	if err := list(static(testSecret)); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	// A change request (with a body) signed with a session token verifies too.
	c := sdk(f, credentials.NewStaticCredentialsProvider(testKeyID, testSecret, "session"))
	if _, err := apply(ctx, c, f.HostedZoneID("example.com"), change(types.ChangeActionUpsert, "s.example.com", 60, `"v"`)); err != nil {
		t.Fatalf("signed change: %v", err)
	}
	if st := f.Stats(); st.Rejected != 3 {
		t.Errorf("Rejected = %d, want 3", st.Rejected)
	}
}

func TestRoute53InjectsTheErrorsTheSDKParses(t *testing.T) {
	f, _ := newRoute53(t, "example.com.")
	c := sdk(f, static(testSecret))
	ctx := context.Background()
	cases := []struct {
		code   string
		status int
	}{
		{"Throttling", 400},
		{"PriorRequestNotComplete", 400},
		{"ServiceUnavailable", 503},
		{"AccessDenied", 403},
	}
	for _, tc := range cases {
		t.Run(tc.code, func(t *testing.T) {
			f.FailNext(1, tc.code)
			_, err := apply(ctx, c, f.HostedZoneID("example.com"), change(types.ChangeActionUpsert, "x.example.com", 60, `"v"`))
			var status interface{ HTTPStatusCode() int }
			if apiCode(err) != tc.code || !errors.As(err, &status) || status.HTTPStatusCode() != tc.status {
				t.Fatalf("error = %v, want %s with HTTP %d", err, tc.code, tc.status)
			}
		})
	}
	f.SetFaults(Faults{Rate: 1, Seed: 3})
	for range 10 {
		if _, err := c.GetChange(ctx, &r53.GetChangeInput{Id: aws.String("C1")}); err == nil {
			t.Fatal("a request succeeded at fault rate 1")
		}
	}
}
