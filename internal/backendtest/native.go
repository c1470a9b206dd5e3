package backendtest

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/certfleet/certfleet/internal/etcdtest"
)

// EnvNATS names the NATS server (JetStream enabled) tests use, e.g.
// nats://127.0.0.1:4222.
const EnvNATS = "CERTFLEET_TEST_NATS"

// Etcd returns a URL with a key prefix of the test's own on an etcd server
// started for the test (etcdtest.Server); the prefix's keys are deleted at
// the end of the test. ok is false when there is no etcd binary, except
// under CI=true, where that fails the test.
func Etcd(t testing.TB) (b Backend, ok bool) {
	t.Helper()
	if !etcdtest.Available() {
		t.Logf("etcd backend not tested: install etcd (apt-get install etcd-server) or set %s", etcdtest.EnvEndpoints)
		return Backend{}, false
	}
	endpoints := etcdtest.Server(t)
	prefix := "certfleet_it_" + randomHex(t)
	hosts := make([]string, 0, 3)
	for ep := range strings.SplitSeq(endpoints, ",") {
		u, err := url.Parse(ep)
		if err != nil {
			t.Fatalf("etcd endpoint %q: %v", ep, err)
		}
		hosts = append(hosts, u.Host)
	}
	t.Cleanup(func() {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Errorf("cleaning up prefix %s: %v", prefix, err)
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Delete(ctx, prefix+"/", clientv3.WithPrefix()); err != nil {
			t.Errorf("cleaning up prefix %s: %v", prefix, err)
		}
	})
	return Backend{Name: "etcd", URL: "etcd://" + strings.Join(hosts, ",") + "/" + prefix}, true
}

// NATS returns a URL with a bucket of the test's own, deleted at the end of
// the test; ok is false when EnvNATS is unset.
func NATS(t testing.TB) (b Backend, ok bool) {
	t.Helper()
	raw := strings.TrimSpace(os.Getenv(EnvNATS))
	if raw == "" {
		t.Logf("NATS backend not tested: set %s to a server URL", EnvNATS)
		return Backend{}, false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s is not a nats:// URL", EnvNATS)
	}
	bucket := "certfleet_it_" + randomHex(t)
	t.Cleanup(func() {
		nc, err := natsgo.Connect(raw)
		if err != nil {
			t.Errorf("deleting bucket %s: %v", bucket, err)
			return
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		js, err := jetstream.New(nc)
		if err == nil {
			err = js.DeleteKeyValue(ctx, bucket)
		}
		if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Errorf("deleting bucket %s: %v", bucket, err)
		}
	})
	return Backend{Name: "nats", URL: (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: "/" + bucket}).String()}, true
}
