package tlsauto

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/caddyserver/certmagic"

	"github.com/certfleet/certfleet/storage/file"
)

// defaultStorage opens the file storage used when Config.Storage is nil.
func defaultStorage() (certmagic.Storage, io.Closer, error) {
	dir, err := dataDir()
	if err != nil {
		return nil, nil, err
	}
	s, err := file.New(context.Background(), file.Config{Dir: dir})
	if err != nil {
		return nil, nil, err
	}
	return s, s, nil
}

// dataDir is $XDG_DATA_HOME/certfleet, or ~/.local/share/certfleet.
func dataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "certfleet"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the default storage (%v): set Storage or CERTFLEET_STORAGE", err)
	}
	return filepath.Join(home, ".local", "share", "certfleet"), nil
}
