package file

import (
	"fmt"
	"syscall"
)

// sharedFSTypes are the statfs magic numbers of file systems that other
// hosts may write to without this kernel (and so inotify) seeing it.
var sharedFSTypes = map[uint32]string{
	0x6969:     "nfs",
	0x517B:     "smb",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x65735546: "fuse", // sshfs, GlusterFS, s3fs, …
	0x00C36400: "ceph",
	0x01021997: "9p",
	0x5346414F: "afs",
	0x6B414653: "kafs",
	0x7461636F: "ocfs2",
	0x01161970: "gfs2",
	0x0BD00BD0: "lustre",
	0x47504653: "gpfs",
	0x73757245: "coda",
}

// sharedFS reports whether dir is on a network or cluster file system, and
// which.
func sharedFS(dir string) (fsType string, shared bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "", false
	}
	name, ok := sharedFSTypes[uint32(st.Type)]
	if !ok {
		return fmt.Sprintf("0x%X", st.Type), false
	}
	return name, true
}
