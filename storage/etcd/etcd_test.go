package etcd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/certfleet/certfleet/internal/changefeed"
)

func TestURLFormsAndValidationErrors(t *testing.T) {
	u, err := url.Parse("etcd://u:s3cret-sentinel@h1:2379,h2:2380/certfleet/prod?lock_ttl=3s&max_request_bytes=4194304")
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Endpoints) != "[http://h1:2379 http://h2:2380]" || c.Prefix != "certfleet/prod" ||
		c.LockTTL != 3*time.Second || c.MaxRequestBytes != 4<<20 || c.Username != "u" {
		t.Fatalf("FromURL = %v", c)
	}
	for _, s := range []string{c.String(), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", c)} {
		if strings.Contains(s, "s3cret-sentinel") {
			t.Fatalf("the password shows in %s", s)
		}
	}
	for _, bad := range []Config{
		{},
		{Endpoints: []string{"h1"}},
		{Endpoints: []string{"http://u:s3cret-sentinel@h1:2379"}},
		{Endpoints: []string{"h:1"}, Prefix: "a//b"},
		{Endpoints: []string{"h:1"}, Prefix: "a/_v"},
		{Endpoints: []string{"h:1"}, LockTTL: time.Second},
		{Endpoints: []string{"h:1"}, MaxRequestBytes: 10},
	} {
		_, err := bad.validate()
		if err == nil {
			t.Errorf("%v: accepted", bad)
		} else if strings.Contains(err.Error(), "s3cret-sentinel") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestValueAboveRequestLimitIsRefusedNamingTheLimit(t *testing.T) {
	s := newTestStorage(t, func(c *Config) { c.MaxRequestBytes = DefaultMaxRequestBytes })
	err := s.Store(testCtx(t), "big", make([]byte, 2<<20))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(DefaultMaxRequestBytes)) || !strings.Contains(err.Error(), "--max-request-bytes") {
		t.Fatalf("Store of 2 MiB with a 1.5 MiB limit: %v, want an error naming the limit", err)
	}
	if _, err := s.Load(testCtx(t), "big"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused value was stored: %v", err)
	}
}

func TestPrefixesNeverSeeEachOther(t *testing.T) {
	a := newTestStorage(t)
	b := newTestStorage(t, func(c *Config) { c.Prefix = a.prefix + "/b" })
	ctx := testCtx(t)
	if err := b.Store(ctx, "k", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if keys, err := a.List(ctx, "", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("prefix %q lists %v, %v from prefix %q", a.prefix, keys, err, b.prefix)
	}
}

func TestFeedCompactedPastAsksForReloadAndGoesOn(t *testing.T) {
	s := newTestStorage(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	raw := rawClient(t, testEndpoints(t))
	var rev int64
	for i := range 5 {
		resp, err := raw.Put(ctx, s.prefix+"/_v/churn", string(encodeValue([]byte(fmt.Sprint(i)), time.Now())))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	if _, err := raw.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// A feed resuming from a revision etcd has compacted away, as after a
	// long disconnection.
	h := &changefeed.Hub{}
	t.Cleanup(h.Close)
	ch, err := h.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.g.Go(func(ctx context.Context) { s.runFeed(ctx, h, rev-3) }) // ends at s.Close
	next := func() string {
		select {
		case k := <-ch:
			return k
		case <-ctx.Done():
			t.Fatal("nothing reported by the feed")
			return ""
		}
	}
	if k := next(); k != "" {
		t.Fatalf("first report %q, want the reload signal", k)
	}
	if err := s.Store(ctx, "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for k := next(); k != "after"; k = next() {
		if k != "churn" {
			t.Fatalf("unexpected key %q", k)
		}
	}
}
