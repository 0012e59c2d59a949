package dnstest

import "syscall"

// procAttr puts a server in its own process group, so that stopping it
// stops its children, and has the kernel kill it if the test process dies
// first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
