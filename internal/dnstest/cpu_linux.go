package dnstest

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime returns the processor time (user and system) used so far by the
// server's processes: its own and its children's that are still running.
// It reads /proc; ok is false when that fails.
func (s *Server) CPUTime() (d time.Duration, ok bool) {
	pgid := s.cmd.Process.Pid
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	const ticks = 100 // USER_HZ, fixed at 100 for user space on Linux
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command name (which may hold spaces).
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		// f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
		if len(f) < 13 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		d += time.Duration(ut+st) * time.Second / ticks
		ok = true
	}
	return d, ok
}
