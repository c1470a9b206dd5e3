package dnsprovider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/libdns/libdns"
)

func auditRecords(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAuditRecordsEveryChange(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	inner := newScripted(t, "example.com.")
	p := Audit(inner, logger, AuditMember("member-7"))

	if _, err := p.AppendRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "a"), txt("_acme-challenge", "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecords(ctx, "example.com.", []libdns.Record{txt("_acme-challenge", "a"), txt("_acme-challenge", "gone")}); err != nil {
		t.Fatal(err)
	}
	inner.failNext("append", errors.New("HTTP 403: denied"))
	if _, err := p.AppendRecords(ctx, "example.com.", []libdns.Record{txt("x", "c")}); err == nil {
		t.Fatal("want the injected error")
	}
	if _, err := p.(libdns.RecordGetter).GetRecords(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}

	recs := auditRecords(t, &buf)
	want := []struct{ op, name, data, result, level string }{
		{"append", "_acme-challenge.example.com.", "a", "ok", "INFO"},
		{"append", "_acme-challenge.example.com.", "b", "ok", "INFO"},
		{"delete", "_acme-challenge.example.com.", "a", "ok", "INFO"},
		{"delete", "_acme-challenge.example.com.", "gone", "not found", "INFO"},
		{"append", "x.example.com.", "c", "HTTP 403: denied", "WARN"},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d audit records, want %d (reads are not audited): %v", len(recs), len(want), recs)
	}
	for i, w := range want {
		r := recs[i]
		if r["msg"] != "dns change" || r["op"] != w.op || r["name"] != w.name || r["data"] != w.data ||
			r["result"] != w.result || r["level"] != w.level || r["zone"] != "example.com." || r["type"] != "TXT" ||
			r["member"] != "member-7" || r["provider"] != "dnsprovider" {
			t.Errorf("record %d = %v, want %+v", i, r, w)
		}
		for _, k := range []string{"time", "duration", "ttl"} {
			if _, ok := r[k]; !ok {
				t.Errorf("record %d has no %s", i, k)
			}
		}
	}
}
