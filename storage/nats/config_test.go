package nats

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestURLFormsAndSecretsNeverShown(t *testing.T) {
	u, err := url.Parse("nats://u:s3cret-sentinel@127.0.0.1:4222/certs_prod?lock_ttl=3s&replicas=3")
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "certs_prod" || c.LockTTL != 3*time.Second || c.Replicas != 3 || !strings.HasPrefix(c.URL, "nats://u:") {
		t.Fatalf("FromURL = %v", c)
	}
	c.Token = "t0ken-sentinel"
	for _, s := range []string{c.String(), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", c)} {
		if strings.Contains(s, "s3cret-sentinel") || strings.Contains(s, "t0ken-sentinel") {
			t.Fatalf("a secret shows in %s", s)
		}
	}
	for _, bad := range []Config{{}, {URL: "nats://h", Bucket: "a.b"}, {URL: "nats://h", LockTTL: time.Millisecond}, {URL: "nats://h", Replicas: 9}} {
		if _, err := bad.validate(); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}
