package dnstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// StartUnbound runs Unbound, a recursive resolver, in dir, listening on
// 127.0.0.1 and sending queries for the test zones to upstream (an
// authoritative server such as StartNSD's). Unlike NSD it sets RA, follows
// CNAME chains into other zones itself, and caches. The caller stops it
// with Close.
func StartUnbound(dir string, upstream *Server) (*Server, error) {
	bin, err := lookPath("unbound")
	if err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(upstream.Addr)
	if err != nil {
		return nil, err
	}
	origins := make([]string, 0, len(zones))
	for o := range zones {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	return start("unbound", dir, func(listen int) (*exec.Cmd, error) {
		var b strings.Builder
		fmt.Fprintf(&b, `server:
  interface: 127.0.0.1@%d
  port: %d
  do-ip6: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  logfile: ""
  use-syslog: no
  do-daemonize: no
  num-threads: 1
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  do-not-query-localhost: no
  qname-minimisation: no
  harden-referral-path: no
  auto-trust-anchor-file: ""
  outgoing-range: 1024
  num-queries-per-thread: 4096
  local-zone: "test." nodefault
  local-zone: "2.0.192.in-addr.arpa." nodefault
  domain-insecure: "test."
  domain-insecure: "2.0.192.in-addr.arpa."
remote-control:
  control-enable: no
`, listen, listen, dir)
		for _, o := range origins {
			fmt.Fprintf(&b, "stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", o, host, port)
		}
		conf := filepath.Join(dir, "unbound.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		return exec.Command(bin, "-d", "-c", conf), nil
	})
}

// Unbound starts NSD and, in front of it, Unbound for t (see StartUnbound),
// and stops both when t ends. Missing binaries fail the test.
func Unbound(t testing.TB) *Server {
	t.Helper()
	nsd := NSD(t)
	return forTest(t, func(dir string) (*Server, error) { return StartUnbound(dir, nsd) })
}
