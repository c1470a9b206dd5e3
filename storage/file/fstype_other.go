//go:build !linux

package file

// sharedFS cannot tell file systems apart here; Watch rescans anyway, as it
// has no inotify.
func sharedFS(string) (fsType string, shared bool) { return "", false }
