package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// limit, when set (-server-cpu), holds every server child to a fraction of
// one CPU.
var limit *cpuLimit

// A cpuLimit is a cgroup with a CPU quota that server processes are put in.
// With the server held below what wrk can drive, the server sets the pace,
// so requests per second compare the servers rather than the client: on a
// machine with few CPUs, wrk alone cannot load a fast server fully.
type cpuLimit struct {
	dir   string // the cgroup's directory
	procs string // the file a PID is written to, to move its process in
}

// newCPULimit makes a cgroup limited to frac of one CPU (period 100 ms),
// under cgroup v2 if it has the cpu controller, else under v1's cpu
// hierarchy. It needs root.
func newCPULimit(frac float64) (*cpuLimit, error) {
	const period = 100000 // µs
	quota := int(frac * period)
	if quota < 1000 {
		return nil, fmt.Errorf("%.3f of a CPU is below the kernel's 1 ms minimum quota", frac)
	}
	name := fmt.Sprintf("yieldio-bench-%d", os.Getpid())
	if ctrl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && hasWord(string(ctrl), "cpu") {
		// cgroup v2: the parent must pass the cpu controller down.
		os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0)
		dir := filepath.Join("/sys/fs/cgroup", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		l := &cpuLimit{dir: dir, procs: filepath.Join(dir, "cgroup.procs")}
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0); err != nil {
			l.remove()
			return nil, fmt.Errorf("setting cpu.max: %w", err)
		}
		return l, nil
	}
	root := "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err != nil {
		return nil, errors.New("no cgroup with the cpu controller (v2 cpu.max or v1 cpu.cfs_quota_us)")
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	l := &cpuLimit{dir: dir, procs: filepath.Join(dir, "cgroup.procs")}
	for _, kv := range [][2]string{{"cpu.cfs_period_us", strconv.Itoa(period)}, {"cpu.cfs_quota_us", strconv.Itoa(quota)}} {
		if err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0); err != nil {
			l.remove()
			return nil, fmt.Errorf("setting %s: %w", kv[0], err)
		}
	}
	return l, nil
}

// add moves process pid, all of its threads, into the cgroup.
func (l *cpuLimit) add(pid int) error {
	return os.WriteFile(l.procs, []byte(strconv.Itoa(pid)), 0)
}

// remove deletes the cgroup; it must hold no process by then.
func (l *cpuLimit) remove() {
	os.Remove(l.dir)
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}
