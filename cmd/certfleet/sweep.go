package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/tlsauto"
)

func sweepFlags(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
	dryRun := fs.Bool("dry-run", false, "list the orphaned challenge records without deleting them")
	return func(ctx context.Context, c *cli, args []string) int {
		if len(args) > 0 {
			return c.usageError(fmt.Errorf("unexpected argument %q", args[0]))
		}
		if *dryRun {
			st, closeStorage, code := openStorage(ctx, c)
			if st == nil {
				return code
			}
			defer closeStorage()
			orphans, err := orphaned(ctx, st)
			if err != nil {
				return c.failure(err)
			}
			printSweep(c, orphans, true)
			return exitOK
		}
		timeout, err := startTimeout()
		if err != nil {
			return c.usageError(err)
		}
		octx, cancel := context.WithTimeout(ctx, timeout)
		cfg, closer, err := tlsauto.ConfigFromEnv(octx)
		cancel()
		if err != nil {
			var se *tlsauto.StorageError
			if errors.As(err, &se) {
				return c.failure(err)
			}
			return c.usageError(err)
		}
		defer closer.Close()
		orphans, err := orphaned(ctx, cfg.Storage)
		if err != nil {
			return c.failure(err)
		}
		solver, err := dns01.New(dns01.Config{
			DNS: cfg.DNS, Storage: cfg.Storage, Resolvers: cfg.Resolvers, NameserverPort: cfg.DNSPort,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return c.usageError(err)
		}
		ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		removed, err := solver.Sweep(ctx)
		if cerr := solver.Close(); err == nil {
			err = cerr
		}
		left, lerr := orphaned(context.WithoutCancel(ctx), cfg.Storage)
		if lerr == nil {
			orphans = deleted(orphans, left)
		}
		printSweep(c, orphans, false)
		if err != nil {
			return c.failure(fmt.Errorf("deleted %d record(s); the others remain in the journal for the next sweep: %w", removed, err))
		}
		return exitOK
	}
}

// orphaned returns the journal entries whose owner is gone.
func orphaned(ctx context.Context, st dns01.Storage) ([]dns01.JournalEntry, error) {
	all, err := dns01.Journal(ctx, st)
	if err != nil {
		return nil, err
	}
	out := []dns01.JournalEntry{}
	for _, e := range all {
		if e.Orphaned {
			out = append(out, e)
		}
	}
	return out, nil
}

// deleted returns the entries of before that are not in after.
func deleted(before, after []dns01.JournalEntry) []dns01.JournalEntry {
	left := map[string]bool{}
	for _, e := range after {
		left[e.Key] = true
	}
	out := []dns01.JournalEntry{}
	for _, e := range before {
		if !left[e.Key] {
			out = append(out, e)
		}
	}
	return out
}

func printSweep(c *cli, entries []dns01.JournalEntry, dryRun bool) {
	if c.json {
		c.printJSON(map[string]any{"dry_run": dryRun, "records": entries})
		return
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(c.stdout, "%s %d orphaned challenge record(s)\n", verb, len(entries))
	for _, e := range entries {
		fmt.Fprintf(c.stdout, "  TXT %s in zone %s (owner %s, written %s)\n", strings.TrimSuffix(e.Name, "."), strings.TrimSuffix(e.Zone, "."), e.Owner, e.Created.UTC().Format(time.RFC3339))
	}
}
