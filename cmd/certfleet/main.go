// Command certfleet diagnoses and operates a certfleet setup from the same
// CERTFLEET_* and DNS provider variables that tlsauto.Listen reads.
//
//	certfleet doctor [--no-write] [names…]   check everything a DNS-01 order needs, each step timed
//	certfleet status                         certificates, locks, journal and members in the shared storage
//	certfleet renew NAME                     renew a certificate now, through the fleet's locks
//	certfleet export NAME --out DIR          write the certificate, chain and key as PEM files
//	certfleet sweep [--dry-run]              delete challenge records that dead members left behind
//
// Every subcommand takes --json for machine-readable output. The exit status
// is 0 on success, 1 when a check or an operation fails, and 2 for a bad
// flag, argument or variable.
//
// Install it with
//
//	go install github.com/certfleet/certfleet/cmd/certfleet@latest
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/certfleet/certfleet/dnsprovider/all"
	_ "github.com/certfleet/certfleet/storage/all"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage: certfleet COMMAND [flags] [arguments]

Commands:
  doctor [--no-write] [names…]   check storage, the CA and, for each name, DNS-01 end to end
  status                         certificates, locks, challenge records and members in storage
  renew NAME                     renew the certificate of NAME now, through the fleet's locks
  export NAME --out DIR          write cert.pem, chain.pem, fullchain.pem and key.pem (0600)
  sweep [--dry-run]              delete challenge records whose owner is gone

Every command takes --json. Settings come from the environment, as for
tlsauto.Listen: CERTFLEET_STORAGE, CERTFLEET_CA, CERTFLEET_DNS_PROVIDER and the
provider's own variables, CERTFLEET_RESOLVERS, … (see the README).
Exit status: 0 success, 1 failure, 2 bad flag, argument or variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name  string
	args  string // the synopsis after the name
	flags func(fs *flag.FlagSet) func(ctx context.Context, c *cli, args []string) int
}

var commands = []command{
	{"doctor", "[--no-write] [names…]", doctorFlags},
	{"status", "", statusFlags},
	{"renew", "NAME", renewFlags},
	{"export", "NAME --out DIR", exportFlags},
	{"sweep", "[--dry-run]", sweepFlags},
}

// cli is what every subcommand writes to.
type cli struct {
	stdout, stderr io.Writer
	json           bool
	cmd            string // the subcommand's name
	synopsis       string // its arguments
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name != args[0] {
			continue
		}
		c := &cli{stdout: stdout, stderr: stderr, cmd: cmd.name, synopsis: cmd.args}
		fs := flag.NewFlagSet("certfleet "+cmd.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.BoolVar(&c.json, "json", false, "print JSON")
		do := cmd.flags(fs)
		rest, err := parseInterspersed(fs, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			c.commandUsage(stdout, cmd, fs)
			return exitOK
		}
		if err != nil {
			fmt.Fprintf(stderr, "certfleet %s: %v\n", cmd.name, err)
			c.commandUsage(stderr, cmd, fs)
			return exitUsage
		}
		return do(ctx, c, rest)
	}
	fmt.Fprintf(stderr, "certfleet: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// parseInterspersed parses flags wherever they appear among the arguments
// ("doctor example.com --no-write"), and returns the other arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func (c *cli) commandUsage(w io.Writer, cmd command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: certfleet %s %s [--json]\n", cmd.name, cmd.args)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// usageError reports a bad argument or variable: the message and the
// command's synopsis on stderr, exit status 2.
func (c *cli) usageError(err error) int {
	fmt.Fprintf(c.stderr, "certfleet %s: %v\n", c.cmd, err)
	fmt.Fprintf(c.stderr, "usage: certfleet %s %s [--json]\n", c.cmd, c.synopsis)
	fmt.Fprintln(c.stderr, "Run certfleet --help for the list of commands and variables.")
	return exitUsage
}

// failure reports an operation that failed: exit status 1. In JSON mode
// the error is printed as {"error": …} on stdout too.
func (c *cli) failure(err error) int {
	if c.json {
		c.printJSON(map[string]string{"error": err.Error()})
	}
	fmt.Fprintf(c.stderr, "certfleet %s: %v\n", c.cmd, err)
	return exitFail
}

func (c *cli) printJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
