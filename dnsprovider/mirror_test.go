package dnsprovider

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/libdns/libdns"
)

func mustMirror(t *testing.T, ps ...Provider) Provider {
	t.Helper()
	m, err := Mirror(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMirrorWritesAndDeletesOnEveryProvider(t *testing.T) {
	ctx := context.Background()
	a, b := newScripted(t, "example.com."), newScripted(t, "example.com.")
	m := mustMirror(t, a, b)
	recs := []libdns.Record{txt("_acme-challenge", "v1"), txt("_acme-challenge.www", "v2")}
	if _, err := m.AppendRecords(ctx, "example.com.", recs); err != nil {
		t.Fatal(err)
	}
	want := []string{"_acme-challenge.example.com.", "_acme-challenge.www.example.com."}
	for _, s := range []*scripted{a, b} {
		if got := txtNames(t, s, "example.com."); !slices.Equal(got, want) {
			t.Fatalf("a provider holds %v, want %v", got, want)
		}
	}
	got, err := m.(libdns.RecordGetter).GetRecords(ctx, "example.com.")
	if err != nil || len(got) != 2 {
		t.Fatalf("GetRecords = %v, %v; want the 2 records on both", got, err)
	}
	deleted, err := m.DeleteRecords(ctx, "example.com.", recs[:1])
	if err != nil || len(deleted) != 1 {
		t.Fatalf("DeleteRecords = %v, %v; want the one record, once", deleted, err)
	}
	for _, s := range []*scripted{a, b} {
		if got := txtNames(t, s, "example.com."); !slices.Equal(got, want[1:]) {
			t.Fatalf("after the delete a provider holds %v", got)
		}
	}
	if Name(m) != "mirror(dnsprovider, dnsprovider)" {
		t.Errorf("Name = %q", Name(m))
	}
}

func TestMirrorUndoesAWriteThatFailedOnOneProvider(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		applyThenFail bool // the failing provider applied the write
		undoOnFailing int  // deletes sent to the failing provider
	}{
		{"permanent refusal", &StatusError{StatusCode: http.StatusForbidden, Message: "no access"}, false, 0},
		{"lost answer", &StatusError{StatusCode: http.StatusBadGateway}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			good, bad := newScripted(t, "example.com."), newScripted(t, "example.com.")
			bad.applyThenFail = tt.applyThenFail
			bad.failNext("append", tt.err)
			m := mustMirror(t, good, bad)
			_, err := m.AppendRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "v")})
			if !errors.Is(err, tt.err) || errors.Is(err, ErrPartialWrite) || !strings.Contains(err.Error(), "undone on dnsprovider") {
				t.Fatalf("err = %v; want the provider's error, undone", err)
			}
			if IsTransientAPIError(err) != IsTransientAPIError(tt.err) {
				t.Errorf("the mirror's error is classified differently from the provider's")
			}
			for name, s := range map[string]*scripted{"good": good, "bad": bad} {
				if got := txtNames(t, s, "example.com."); len(got) != 0 {
					t.Errorf("%s provider still holds %v", name, got)
				}
			}
			if good.count("delete") != 1 || bad.count("delete") != tt.undoOnFailing {
				t.Errorf("undo deletes: good %d, failing %d; want 1, %d", good.count("delete"), bad.count("delete"), tt.undoOnFailing)
			}
		})
	}
}

func TestMirrorReportsAPartialWriteItCouldNotUndo(t *testing.T) {
	ctx := context.Background()
	good, bad := newScripted(t, "example.com."), newScripted(t, "example.com.")
	bad.failNext("append", &StatusError{StatusCode: http.StatusForbidden})
	good.failNext("delete", &StatusError{StatusCode: http.StatusForbidden, Message: "delete refused"})
	m := mustMirror(t, good, bad)
	_, err := m.AppendRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "v")})
	if !errors.Is(err, ErrPartialWrite) || !strings.Contains(err.Error(), "delete refused") {
		t.Fatalf("err = %v; want ErrPartialWrite naming the failed undo", err)
	}
	if got := txtNames(t, good, "example.com."); len(got) != 1 {
		t.Fatalf("test error: the record should remain on the good provider, it holds %v", got)
	}
	// The caller's delete goes to every provider.
	if _, err := m.DeleteRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "v")}); err != nil {
		t.Fatal(err)
	}
	if got := txtNames(t, good, "example.com."); len(got) != 0 {
		t.Fatalf("the delete left %v", got)
	}
}

func TestMirrorDeleteFailsWhenAnyProviderFails(t *testing.T) {
	a, b := newScripted(t, "example.com."), newScripted(t, "example.com.")
	b.failNext("delete", &StatusError{StatusCode: http.StatusServiceUnavailable})
	m := mustMirror(t, a, b)
	_, err := m.DeleteRecords(context.Background(), "example.com.", []libdns.Record{txt("x", "v")})
	if err == nil || !IsTransientAPIError(err) || a.count("delete") != 1 {
		t.Fatalf("err = %v (deletes on a: %d); want a transient error after deleting on both", err, a.count("delete"))
	}
}

func TestMirrorListsZonesEveryProviderHas(t *testing.T) {
	a := newScripted(t, "example.com.", "example.org.", "a.test.")
	b := newScripted(t, "example.org.", "EXAMPLE.com", "b.test.")
	zones, err := mustMirror(t, a, b).(libdns.ZoneLister).ListZones(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range zones {
		names = append(names, z.Name)
	}
	if !slices.Equal(names, []string{"example.com.", "example.org."}) {
		t.Fatalf("ListZones = %v", names)
	}
}

func TestMirrorRejectsNoOrNilProviders(t *testing.T) {
	if _, err := Mirror(); err == nil || !strings.Contains(err.Error(), "no providers") {
		t.Errorf("Mirror(): %v", err)
	}
	if _, err := Mirror(newScripted(t, "example.com."), nil); err == nil || !strings.Contains(err.Error(), "provider 1 is nil") {
		t.Errorf("Mirror(p, nil): %v", err)
	}
}
