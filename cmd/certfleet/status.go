package main

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/dnsprovider/dns01"
	"github.com/certfleet/certfleet/storage"
	"github.com/certfleet/certfleet/tlsauto"
)

// dueFraction is the share of a certificate's lifetime under which status
// reports it as due (exit status 1), as the Manager's health check does.
const dueFraction = 0.10

// certInfo is a certificate found in storage.
type certInfo struct {
	Name      string    `json:"name"`
	SANs      []string  `json:"sans"`
	Issuer    string    `json:"issuer"`     // the issuing CA certificate's common name
	IssuerKey string    `json:"issuer_key"` // the ACME directory it was obtained from, as certmagic keys it
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	DaysLeft  float64   `json:"days_left"`
	Due       bool      `json:"due"` // less than 10 % of its lifetime left
	key       string    // storage key of the certificate
}

// lockList is what status can see of the locks.
type lockList struct {
	Visible bool               `json:"visible"`
	Note    string             `json:"note,omitempty"`
	Held    []storage.HeldLock `json:"held"`
}

// statusReport is status's output.
type statusReport struct {
	Storage      string               `json:"storage"`
	OK           bool                 `json:"ok"`
	Certificates []certInfo           `json:"certificates"`
	Locks        lockList             `json:"locks"`
	Challenges   []dns01.JournalEntry `json:"challenge_records"`
	Members      []dns01.Lease        `json:"members"`
}

func statusFlags(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
	return func(ctx context.Context, c *cli, args []string) int {
		if len(args) > 0 {
			return c.usageError(fmt.Errorf("unexpected argument %q", args[0]))
		}
		st, closeStorage, code := openStorage(ctx, c)
		if st == nil {
			return code
		}
		defer closeStorage()
		rep := statusReport{Storage: fmt.Sprint(st), OK: true, Locks: lockList{Held: []storage.HeldLock{}}}
		var err error
		if rep.Certificates, err = loadCertificates(ctx, st); err != nil {
			return c.failure(err)
		}
		for _, ci := range rep.Certificates {
			if ci.Due {
				rep.OK = false
			}
		}
		rep.Locks = heldLocks(ctx, st)
		if rep.Challenges, err = dns01.Journal(ctx, st); err != nil {
			return c.failure(err)
		}
		if rep.Members, err = dns01.Leases(ctx, st); err != nil {
			return c.failure(err)
		}
		if c.json {
			c.printJSON(rep)
		} else {
			printStatus(c, rep)
		}
		if !rep.OK {
			return exitFail
		}
		return exitOK
	}
}

// openStorage opens the storage the environment names. On failure it
// returns nil and the exit status: 2 for a bad variable, 1 for a storage
// that cannot be reached.
func openStorage(ctx context.Context, c *cli) (certmagic.Storage, func(), int) {
	timeout, err := startTimeout()
	if err != nil {
		return nil, nil, c.usageError(err)
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, closer, err := tlsauto.StorageFromEnv(octx)
	if err != nil {
		if errors.Is(err, storage.ErrUnknownScheme) {
			return nil, nil, c.usageError(err)
		}
		return nil, nil, c.failure(err)
	}
	return st, func() { closer.Close() }, exitOK
}

// loadCertificates reads every certificate certmagic keeps in st
// (certificates/<issuer>/<name>/<name>.crt), sorted by name.
func loadCertificates(ctx context.Context, st certmagic.Storage) ([]certInfo, error) {
	keys, err := st.List(ctx, "certificates", true)
	if errors.Is(err, fs.ErrNotExist) {
		return []certInfo{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the certificates in storage: %w", err)
	}
	out := []certInfo{}
	now := time.Now()
	for _, k := range keys {
		if !strings.HasSuffix(k, ".crt") {
			continue
		}
		parts := strings.Split(k, "/")
		if len(parts) != 4 {
			continue
		}
		b, err := st.Load(ctx, k)
		if err != nil {
			continue // removed meanwhile, or unreadable: not a certificate to report
		}
		leaf, err := parseLeaf(b)
		if err != nil {
			out = append(out, certInfo{Name: parts[2], IssuerKey: parts[1], Issuer: "unreadable: " + err.Error(), Due: true, key: k})
			continue
		}
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		left := leaf.NotAfter.Sub(now)
		name := parts[2]
		if len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
		out = append(out, certInfo{
			Name: name, SANs: leaf.DNSNames, Issuer: leaf.Issuer.CommonName, IssuerKey: parts[1],
			Serial: hex.EncodeToString(leaf.SerialNumber.Bytes()), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
			DaysLeft: float64(left.Round(time.Hour)) / float64(24*time.Hour),
			Due:      float64(left) < dueFraction*float64(life),
			key:      k,
		})
	}
	slices.SortFunc(out, func(a, b certInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return a.NotAfter.Compare(b.NotAfter)
	})
	return out, nil
}

// parseLeaf returns the first certificate of a PEM chain.
func parseLeaf(chain []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(chain)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// heldLocks lists the locks held, where the backend lets one read them.
func heldLocks(ctx context.Context, st certmagic.Storage) lockList {
	for s := st; s != nil; {
		if r, ok := s.(storage.LockLister); ok {
			held, err := r.HeldLocks(ctx)
			if err != nil {
				return lockList{Note: "reading the locks: " + err.Error(), Held: []storage.HeldLock{}}
			}
			if held == nil {
				held = []storage.HeldLock{}
			}
			return lockList{Visible: true, Held: held}
		}
		w, ok := s.(interface{ Unwrap() storage.Storage })
		if !ok {
			break
		}
		s = w.Unwrap()
	}
	return lockList{Note: fmt.Sprintf("%v does not let locks be listed: it does not implement storage.LockLister", st), Held: []storage.HeldLock{}}
}

func printStatus(c *cli, rep statusReport) {
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "storage: %s\n\n", rep.Storage)
	fmt.Fprintf(w, "CERTIFICATES (%d)\n", len(rep.Certificates))
	if len(rep.Certificates) > 0 {
		fmt.Fprintln(w, "NAME\tISSUER\tEXPIRES\tDAYS LEFT\tSERIAL\t")
		for _, ci := range rep.Certificates {
			days := fmt.Sprintf("%.1f", ci.DaysLeft)
			if ci.Due {
				days += " (due)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t\n", ci.Name, ci.Issuer, ci.NotAfter.UTC().Format(time.RFC3339), days, ci.Serial)
		}
	}
	fmt.Fprintf(w, "\nLOCKS HELD (%d)\n", len(rep.Locks.Held))
	if !rep.Locks.Visible {
		fmt.Fprintf(w, "(%s)\n", rep.Locks.Note)
	} else if len(rep.Locks.Held) > 0 {
		fmt.Fprintln(w, "NAME\tHOLDER\tSINCE\tLEASE ENDS\t")
		for _, l := range rep.Locks.Held {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t\n", l.Name, l.Owner, l.Acquired.UTC().Format(time.RFC3339), l.Expires.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(w, "\nCHALLENGE RECORDS IN THE JOURNAL (%d)\n", len(rep.Challenges))
	if len(rep.Challenges) > 0 {
		fmt.Fprintln(w, "RECORD\tZONE\tOWNER\tWRITTEN\tOWNER GONE\t")
		for _, e := range rep.Challenges {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t\n", strings.TrimSuffix(e.Name, "."), strings.TrimSuffix(e.Zone, "."), e.Owner, e.Created.UTC().Format(time.RFC3339), e.Orphaned)
		}
	}
	alive := 0
	for _, m := range rep.Members {
		if !m.Expired {
			alive++
		}
	}
	fmt.Fprintf(w, "\nMEMBERS (%d alive)\n", alive)
	if len(rep.Members) > 0 {
		fmt.Fprintln(w, "ID\tHOST\tPID\tSTARTED\tLEASE RENEWED\tALIVE\t")
		for _, m := range rep.Members {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%v\t\n", m.ID, m.Host, m.PID, m.Started.UTC().Format(time.RFC3339), m.Renewed.UTC().Format(time.RFC3339), !m.Expired)
		}
	}
	w.Flush()
	if !rep.OK {
		fmt.Fprintf(c.stdout, "\nsome certificates have less than %d %% of their lifetime left: see the lines marked due\n", int(dueFraction*100))
	}
}

// certFiles returns the storage keys of the certificate of name with the
// latest expiry, and of its private key.
func certFiles(ctx context.Context, st certmagic.Storage, name string) (certInfo, string, error) {
	certs, err := loadCertificates(ctx, st)
	if err != nil {
		return certInfo{}, "", err
	}
	safe := certmagic.StorageKeys.Safe(name)
	var best *certInfo
	for i, ci := range certs {
		if path.Base(path.Dir(ci.key)) == safe && (best == nil || ci.NotAfter.After(best.NotAfter)) {
			best = &certs[i]
		}
	}
	if best == nil {
		return certInfo{}, "", fmt.Errorf("no certificate for %s in storage (certfleet status lists them)", name)
	}
	return *best, strings.TrimSuffix(best.key, ".crt") + ".key", nil
}
