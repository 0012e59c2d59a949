//go:build !linux

package dnstest

import "syscall"

// procAttr puts a server in its own process group, so that stopping it
// stops its children.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
