package dnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// StartNSD runs NSD, an authoritative server, in dir (which must exist and
// which it fills with its configuration, zone files and state), serving
// the test zones on 127.0.0.1. The caller stops it with Close.
//
// NSD runs in the foreground as the calling user (root included: it is
// told not to switch users or chroot), with one server process.
func StartNSD(dir string) (*Server, error) {
	bin, err := lookPath("nsd")
	if err != nil {
		return nil, err
	}
	files, err := writeZones(dir)
	if err != nil {
		return nil, err
	}
	origins := make([]string, 0, len(files))
	for o := range files {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	return start("nsd", dir, func(port int) (*exec.Cmd, error) {
		var b strings.Builder
		fmt.Fprintf(&b, `server:
  ip-address: 127.0.0.1@%d
  port: %d
  server-count: 1
  tcp-count: 1000
  username: ""
  chroot: ""
  zonesdir: %q
  database: ""
  pidfile: %q
  xfrdfile: %q
  zonelistfile: %q
  logfile: %q
  verbosity: 1
  hide-version: yes
  reuseport: no
  refuse-any: yes
  # Response rate limiting would throttle a benchmark from one address.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
`, port, port, dir, filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"),
			filepath.Join(dir, "zone.list"), filepath.Join(dir, "nsd.log"))
		for _, o := range origins {
			fmt.Fprintf(&b, "zone:\n  name: %q\n  zonefile: %q\n", o, files[o])
		}
		conf := filepath.Join(dir, "nsd.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(bin, "-d", "-c", conf), nil
	})
}

// NSD starts NSD for t (see StartNSD) and stops it when t ends. A missing
// nsd binary fails the test.
func NSD(t testing.TB) *Server {
	t.Helper()
	return forTest(t, StartNSD)
}
