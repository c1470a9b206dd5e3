package file

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
)

// checkDirMode makes sure that only its owner can change dir: whoever can
// write to it can replace a certificate and its key with ones of their
// choosing, which certfleet would then serve. With fix, dir is tightened
// to 0700 instead; without it, a dir that group or others can read is
// allowed with a warning (the private keys in it are 0600, but their names
// say which domains are served).
func checkDirMode(dir string, fix bool, log *slog.Logger) error {
	if runtime.GOOS == "windows" {
		return nil // permission bits do not describe Windows ACLs
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("file storage: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("file storage: Config.Dir %s is not a directory", dir)
	}
	mode := fi.Mode().Perm()
	if mode&0o077 == 0 {
		return nil
	}
	if fix {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("file storage: tightening %s from mode %04o to 0700 (Config.FixPermissions): %w", dir, mode, err)
		}
		log.Info("tightened the storage directory to mode 0700", "dir", dir, "was", fmt.Sprintf("%04o", mode))
		return nil
	}
	if mode&0o022 != 0 {
		return fmt.Errorf("file storage: directory %s is writable by group or others (mode %04o), who could replace the certificates and keys it serves: run chmod 700 %s, or set Config.FixPermissions (URL parameter fix_permissions=true) to have certfleet do it",
			dir, mode, dir)
	}
	log.Warn("the storage directory is readable by group or others; run chmod 700 on it or set FixPermissions", "dir", dir, "mode", fmt.Sprintf("%04o", mode))
	return nil
}
