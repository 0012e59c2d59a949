//go:build !linux

package pgcluster

import "syscall"

// procAttr runs a server program as cred (nil: ourselves). Without Linux's
// parent-death signal, a server outlives a test binary that is killed.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
