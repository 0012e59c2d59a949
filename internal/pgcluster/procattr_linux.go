package pgcluster

import "syscall"

// procAttr runs a server program as cred (nil: ourselves). On Linux the
// child also gets SIGQUIT, PostgreSQL's immediate shutdown, if the thread
// that started it dies: a test binary killed by its timeout takes its
// server with it.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
