package postgres

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/storage"
)

func TestOpenReadsSettingsFromTheURL(t *testing.T) {
	cs := testConnString(t)
	if !strings.HasPrefix(cs, "postgres://") && !strings.HasPrefix(cs, "postgresql://") {
		t.Skipf("%s is a DSN; storage.Open takes URLs", testEnv)
	}
	ns := uniqueNamespace(t, "open")
	newTestStorage(t, cs, ns, nil) // drops the schema at the end
	u := withParam(withParam(withParam(cs, paramSchema, schemaFor(ns)), paramTable, "opened"), paramLockTTL, "3s")
	got, err := storage.Open(testCtx(t), u)
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	s := got.(*Storage)
	defer s.Close()
	if s.schema != schemaFor(ns) || s.table != "opened" || s.lockTTL != 3*time.Second {
		t.Errorf("storage.Open gave schema %q, table %q, TTL %v; want %q, opened, 3s", s.schema, s.table, s.lockTTL, schemaFor(ns))
	}
	if err := s.Store(testCtx(t), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}

	_, err = storage.Open(testCtx(t), withParam(cs, paramLockTTL, "soon"))
	if err == nil || !strings.Contains(err.Error(), paramLockTTL) {
		t.Errorf("storage.Open with a bad %s: %v, want an error naming it", paramLockTTL, err)
	}
}

func TestOpenKnowsBothSchemes(t *testing.T) {
	for _, scheme := range []string{"postgres", "postgresql"} {
		if !slices.Contains(storage.Names(), scheme) {
			t.Errorf("scheme %s is not registered", scheme)
		}
	}
}

func TestOpenRefusesAnUnknownCertfleetParameter(t *testing.T) {
	// No server is needed: the URL is refused before connecting.
	_, err := storage.Open(t.Context(), "postgres://u:sentinel-pw@127.0.0.1:1/db?certfleet_tabel=x&sslmode=disable")
	if err == nil {
		t.Fatal("storage.Open accepted certfleet_tabel")
	}
	for _, want := range []string{"certfleet_tabel", paramSchema, paramTable, paramLockTTL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "sentinel-pw") {
		t.Errorf("error %q shows the password", err)
	}
}
