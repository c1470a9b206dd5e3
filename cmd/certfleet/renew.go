package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certfleet/certfleet/tlsauto"
)

func renewFlags(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
	return func(ctx context.Context, c *cli, args []string) int {
		if len(args) != 1 {
			return c.usageError(errors.New("name exactly one certificate to renew"))
		}
		name := args[0]
		timeout, err := startTimeout()
		if err != nil {
			return c.usageError(err)
		}
		octx, cancel := context.WithTimeout(ctx, timeout)
		cfg, closer, err := tlsauto.ConfigFromEnv(octx, name)
		cancel()
		var se *tlsauto.StorageError
		if errors.As(err, &se) {
			return c.failure(err)
		}
		if err != nil {
			return c.usageError(err)
		}
		defer closer.Close()
		m, err := tlsauto.New(cfg)
		if err != nil {
			return c.usageError(err)
		}
		defer m.Close()
		if os.Getenv(tlsauto.EnvStartTimeout) == "" {
			timeout = 10 * time.Minute // an order may wait minutes for DNS
		}
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
		// Start loads the current certificate (or obtains one if there is
		// none); Renew then replaces it, holding the fleet's lock on the
		// name, so that no other member orders it at the same time.
		if err := m.Start(ctx); err != nil {
			return c.failure(err)
		}
		if err := m.Renew(ctx, name); err != nil {
			return c.failure(err)
		}
		cert, err := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: strings.TrimPrefix(name, "*.")})
		if err != nil || cert.Leaf == nil {
			return c.failure(fmt.Errorf("renewed %s, but the new certificate is not served: %v", name, err))
		}
		out := map[string]any{
			"name": name, "renewed": true, "serial": hex.EncodeToString(cert.Leaf.SerialNumber.Bytes()),
			"not_before": cert.Leaf.NotBefore, "not_after": cert.Leaf.NotAfter,
		}
		if c.json {
			c.printJSON(out)
		} else {
			fmt.Fprintf(c.stdout, "renewed %s: serial %s, valid until %s\n", name, out["serial"], cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return exitOK
	}
}

func exportFlags(fs *flag.FlagSet) func(context.Context, *cli, []string) int {
	out := fs.String("out", "", "the directory to write cert.pem, chain.pem, fullchain.pem and key.pem to (required)")
	return func(ctx context.Context, c *cli, args []string) int {
		if len(args) != 1 {
			return c.usageError(errors.New("name exactly one certificate to export"))
		}
		if *out == "" {
			return c.usageError(errors.New("--out DIR is required"))
		}
		name := strings.ToLower(strings.TrimSuffix(args[0], "."))
		st, closeStorage, code := openStorage(ctx, c)
		if st == nil {
			return code
		}
		defer closeStorage()
		ci, keyKey, err := certFiles(ctx, st, name)
		if err != nil {
			return c.failure(err)
		}
		chainPEM, err := st.Load(ctx, ci.key)
		if err != nil {
			return c.failure(fmt.Errorf("reading the certificate of %s: %w", name, err))
		}
		keyPEM, err := st.Load(ctx, keyKey)
		if err != nil {
			return c.failure(fmt.Errorf("reading the private key of %s: %w", name, err))
		}
		leaf, rest := pem.Decode(chainPEM)
		if leaf == nil {
			return c.failure(fmt.Errorf("the certificate of %s in storage is not PEM", name))
		}
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return c.failure(err)
		}
		files := []struct {
			name string
			data []byte
			perm os.FileMode
		}{
			{"cert.pem", pem.EncodeToMemory(leaf), 0o644},
			{"chain.pem", rest, 0o644},
			{"fullchain.pem", chainPEM, 0o644},
			{"key.pem", keyPEM, 0o600},
		}
		var written []string
		for _, f := range files {
			p := filepath.Join(*out, f.name)
			if err := writeFileAtomic(p, f.data, f.perm); err != nil {
				return c.failure(err)
			}
			written = append(written, p)
		}
		if c.json {
			c.printJSON(map[string]any{"name": name, "serial": ci.Serial, "not_after": ci.NotAfter, "files": written})
		} else {
			fmt.Fprintf(c.stdout, "exported %s (serial %s, valid until %s):\n", name, ci.Serial, ci.NotAfter.UTC().Format(time.RFC3339))
			for _, p := range written {
				fmt.Fprintf(c.stdout, "  %s\n", p)
			}
		}
		return exitOK
	}
}

// writeFileAtomic writes data to a temporary file beside path with perm and
// renames it over path: a failed write leaves the previous file intact.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
