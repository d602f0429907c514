//go:build unix

package hub

import "syscall"

// fileLimit is the most files the process may have open (the soft limit,
// which Go raises to the hard one at start), or 0 when unknown.
func fileLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0
	}
	return int(r.Cur)
}
