//go:build unix

package api

import "syscall"

// fileLimit is the process's limit on open file descriptors (RLIMIT_NOFILE, soft), 0 when unknown.
func fileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return int(min(r.Cur, 1<<24))
}
