package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/certfleet/certfleet/internal/testacme/apifake"
)

// asCommand, set in a child's environment, makes the test binary run the
// command instead of the tests.
const asCommand = "CERTFLEET_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// Credentials of the fake Route 53 API.
const (
	awsKeyID  = "AKIDCERTFLEETTEST"
	awsSecret = "certfleet-test-secret-sentinel"
)

// world is the test world as a child process sees it: a Pebble CA and an
// authoritative DNS server in this process, a fake Route 53 API over its
// zones, a storage directory, and the environment that points the command
// at all of them.
type world struct {
	*testacme.World
	r53        *apifake.Route53
	env        map[string]string
	storageDir string
}

func newWorld(t *testing.T, opts testacme.Options) *world {
	t.Helper()
	w := testacme.Start(t, opts)
	return newWorldOver(t, w, w.Provider())
}

// newWorldOver is newWorld with the Route 53 fake writing into backend.
func newWorldOver(t *testing.T, w *testacme.World, backend apifake.Backend) *world {
	t.Helper()
	f := apifake.NewRoute53(backend)
	f.SetPendingPolls(0)
	f.SetCredentials(awsKeyID, awsSecret)
	t.Cleanup(f.Close)
	dir := t.TempDir()
	roots := filepath.Join(dir, "acme-roots.pem")
	if err := os.WriteFile(roots, w.ACMERootsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	storageDir := filepath.Join(dir, "storage")
	return &world{
		World: w, r53: f, storageDir: storageDir,
		env: map[string]string{
			"PATH":                          os.Getenv("PATH"),
			"HOME":                          dir,
			"XDG_DATA_HOME":                 filepath.Join(dir, "data"),
			"CERTFLEET_CA":                  w.DirectoryURL(),
			"CERTFLEET_CA_ROOTS":            roots,
			"CERTFLEET_RESOLVERS":           w.DNSAddr(),
			"CERTFLEET_DNS_PORT":            strconv.Itoa(w.DNSPort()),
			"CERTFLEET_DNS_PROVIDER":        "route53",
			"CERTFLEET_EMAIL":               "ops@example.test",
			"CERTFLEET_STORAGE":             storageDir,
			"CERTFLEET_PROPAGATION_TIMEOUT": "3s",
			"AWS_REGION":                    "us-east-1",
			"AWS_ACCESS_KEY_ID":             awsKeyID,
			"AWS_SECRET_ACCESS_KEY":         awsSecret,
			"AWS_ENDPOINT_URL_ROUTE_53":     f.URL(),
			"AWS_CONFIG_FILE":               filepath.Join(dir, "aws-config"),
			"AWS_SHARED_CREDENTIALS_FILE":   filepath.Join(dir, "aws-credentials"),
			"AWS_EC2_METADATA_DISABLED":     "true",
		},
	}
}

// result is what a run of the command printed and its exit status.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the command with args in a child process, with w's environment
// changed by env ("" removes a variable).
func (w *world) run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	e := maps.Clone(w.env)
	maps.Copy(e, env)
	return runCommand(t, e, args...)
}

func runCommand(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = []string{asCommand + "=1"}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if env[k] != "" {
			cmd.Env = append(cmd.Env, k+"="+env[k])
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running certfleet %s: %v", strings.Join(args, " "), err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("certfleet %s panicked:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// secondNameserver adds ns2.example.test on 127.0.0.2, on the port of the
// world's server, to the nameservers of example.test.
func secondNameserver(t *testing.T, w *testacme.World) *testacme.DNSServer {
	t.Helper()
	ns2, err := w.StartDNSServer("127.0.0.2:" + strconv.Itoa(w.DNSPort()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Zones().SetNameServers("example.test",
		testacme.NameServer{Host: "ns1.example.test", Addr: netip.MustParseAddr("127.0.0.1")},
		testacme.NameServer{Host: "ns2.example.test", Addr: netip.MustParseAddr("127.0.0.2")},
	); err != nil {
		t.Fatal(err)
	}
	return ns2
}
