package dnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A Server is a DNS server process listening on a loopback high port, UDP
// and TCP.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Name says which server it is ("nsd", "unbound").
	Name string

	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startTimeout bounds how long a server may take to start answering.
const startTimeout = 15 * time.Second

// start runs the server command built by mk for a free port until it
// answers a query for Host, retrying a few times with another port when the
// one picked was taken meanwhile.
func start(name, dir string, mk func(port int) (*exec.Cmd, error)) (*Server, error) {
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd, err := mk(port)
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Name: name, dir: dir,
			log: filepath.Join(dir, name+".out"), cmd: cmd, done: make(chan struct{})}
		out, err := os.Create(s.log)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = out, out
		// Its own process group, so that stopping it stops its children.
		cmd.SysProcAttr = procAttr()
		if err := cmd.Start(); err != nil {
			out.Close()
			return nil, fmt.Errorf("dnstest: starting %s: %w", name, err)
		}
		out.Close()
		go func() { cmd.Wait(); close(s.done) }()
		if err := s.waitReady(); err != nil {
			s.Close()
			lastErr = fmt.Errorf("dnstest: %s on port %d: %w\n%s", name, port, err, s.Log())
			continue
		}
		return s, nil
	}
	return nil, lastErr
}

// waitReady queries the server until it answers.
func (s *Server) waitReady() error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(Host+".", dns.TypeA)
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("exited before answering")
		default:
		}
		if r, _, err := c.Exchange(m, s.Addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %v", startTimeout)
}

// Log returns what the server printed.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// Close stops the server and its children: SIGTERM, then SIGKILL if it has
// not exited within five seconds. It does not remove its directory.
func (s *Server) Close() error {
	if s.cmd.Process == nil {
		return nil
	}
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
	// Children that outlived the leader.
	syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// freePort returns a loopback port that is free for both UDP and TCP.
func freePort() (int, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, errors.New("dnstest: no free port")
}

// lookPath finds a server binary, also in the sbin directories that a
// non-root PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("dnstest: %s not found: install the Debian package %q (.ci/run does)", name, name)
}

// writeZones writes the test zones into dir and returns their file names
// by origin.
func writeZones(dir string) (map[string]string, error) {
	files := make(map[string]string)
	for origin, text := range zones {
		f := filepath.Join(dir, strings.TrimSuffix(origin, ".")+".zone")
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			return nil, err
		}
		files[origin] = f
	}
	return files, nil
}

// forTest starts a server with startFn in a temporary directory of t and
// stops it when t ends. A server that cannot start fails the test.
func forTest(t testing.TB, startFn func(dir string) (*Server, error)) *Server {
	t.Helper()
	s, err := startFn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
