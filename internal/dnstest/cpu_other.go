//go:build !linux

package dnstest

import "time"

// CPUTime reports the server's processor time where /proc has it: not on
// this system.
func (s *Server) CPUTime() (time.Duration, bool) { return 0, false }
