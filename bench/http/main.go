// Command http compares yieldio's HTTP server with net/http and fasthttp on
// this machine, in one run: plaintext requests per second with wrk
// (keep-alive, and pipelined 16 deep), the server's CPU time per request,
// and the resident memory each idle keep-alive connection costs.
//
//	cd bench && go run ./http
//
// The servers take turns, round after round (-rounds), so that they share
// the machine's noise; the report gives medians and each round's ratios.
//
// Each server runs in a child process of its own (this program, re-executed
// with -serve), so its memory and CPU are its own. With -pin (the default
// on machines with two or more CPUs) the server is pinned to CPU 0 with
// GOMAXPROCS=1 and wrk to the other CPUs, so the two do not fight over
// cores.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/yieldio/yieldio/server"
)

var (
	serveKind = flag.String("serve", "", "run a server of this kind (yieldio, nethttp, fasthttp) and wait; used by the driver")
	addr      = flag.String("addr", "127.0.0.1:0", "server address")
	duration  = flag.Duration("duration", 5*time.Second, "length of each wrk run")
	rounds    = flag.Int("rounds", 3, "rounds: each runs every server in turn, so that they share the machine's noise")
	conns     = flag.Int("conns", 256, "wrk connections")
	depth     = flag.Int("pipeline", 16, "pipelining depth")
	idle      = flag.Int("idle", 10000, "idle keep-alive connections for the memory test; 0: no memory test")
	kinds     = flag.String("servers", "yieldio,nethttp,fasthttp", "servers to compare")
	pin       = flag.Bool("pin", runtime.NumCPU() >= 2, "pin the server to CPU 0 (GOMAXPROCS=1) and wrk to the rest")
	serverCPU = flag.Float64("server-cpu", 0, "limit each server to this fraction of one CPU with a cgroup quota (root, Linux); 0: no limit")
)

const hello = "Hello, World!"

func main() {
	flag.Parse()
	raiseFileLimit()
	if *serveKind != "" {
		serve(*serveKind, *addr)
		return
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		log.Fatal("wrk is required (apt-get install wrk)")
	}
	type result struct {
		plain, piped       []float64 // req/s, one per round
		plainCPU, pipedCPU []float64 // server CPU per request (µs), one per round
		plainWrk, pipedWrk []float64 // wrk's CPU use (share of its CPUs), one per round
		perConn            float64
	}
	if *serverCPU > 0 {
		lim, err := newCPULimit(*serverCPU)
		if err != nil {
			log.Fatalf("-server-cpu: %v", err)
		}
		defer lim.remove()
		limit = lim
	}
	results := map[string]*result{}
	names := strings.Split(*kinds, ",")
	for _, kind := range names {
		results[kind] = &result{}
	}
	for round := 1; round <= *rounds; round++ {
		for _, kind := range names {
			s := startChild(kind)
			r := results[kind]
			plain, plainCPU, plainWrk := s.run(s.url+"/plaintext", 0)
			piped, pipedCPU, pipedWrk := s.run(s.url+"/plaintext", *depth)
			r.plain, r.piped = append(r.plain, plain), append(r.piped, piped)
			r.plainCPU, r.pipedCPU = append(r.plainCPU, plainCPU), append(r.pipedCPU, pipedCPU)
			r.plainWrk, r.pipedWrk = append(r.plainWrk, plainWrk), append(r.pipedWrk, pipedWrk)
			if round == 1 && *idle > 0 {
				r.perConn = idleCost(s)
			}
			s.stop()
			log.Printf("round %d  %-9s plaintext %10.0f req/s %5.2f µs CPU/req (wrk busy %3.0f%%)   pipelined %10.0f req/s %5.2f µs CPU/req (wrk busy %3.0f%%)",
				round, kind, plain, plainCPU, 100*plainWrk, piped, pipedCPU, 100*pipedWrk)
		}
	}
	fmt.Printf("\n%d rounds of %d-second wrk runs, %d connections, pipelining depth %d; %d idle connections; pinned: %v\n",
		*rounds, int(duration.Seconds()), *conns, *depth, *idle, *pin)
	if *serverCPU > 0 {
		fmt.Printf("each server limited to %.2f of one CPU (cgroup quota)\n", *serverCPU)
	}
	fmt.Println()
	fmt.Println("Medians over the rounds:")
	fmt.Println()
	fmt.Println("| server | plaintext req/s | pipelined req/s | plaintext CPU/req | pipelined CPU/req | wrk busy (plaintext, pipelined) | RSS per idle conn |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	for _, kind := range names {
		r := results[kind]
		fmt.Printf("| %s | %.0f | %.0f | %.2f µs | %.2f µs | %.0f%%, %.0f%% | %.0f B |\n", kind, median(r.plain), median(r.piped),
			median(r.plainCPU), median(r.pipedCPU), 100*median(r.plainWrk), 100*median(r.pipedWrk), r.perConn)
	}
	fmt.Println()
	fmt.Println("CPU/req is the server process's own CPU time (user + system) over the requests wrk")
	fmt.Println("completed: unlike req/s, it does not drop when other programs take the server's CPU.")
	fmt.Println("wrk busy is wrk's own CPU time over the time its CPUs were given: near 100%, wrk, not")
	fmt.Println("the server, sets req/s, and req/s ratios between servers say little (see -server-cpu).")
	if y, ok := results["yieldio"]; ok {
		fmt.Println()
		fmt.Println("Ratios: the median of each round's ratio (the rounds' own in parentheses):")
		fmt.Println()
		for _, kind := range names {
			if kind == "yieldio" {
				continue
			}
			p := results[kind]
			mem := "not measured"
			if *idle > 0 {
				mem = fmt.Sprintf("%.2fx", y.perConn/p.perConn)
			}
			fmt.Printf("yieldio vs %s: plaintext %s, pipelined %s, idle memory %s\n",
				kind, ratios(y.plain, p.plain), ratios(y.piped, p.piped), mem)
			fmt.Printf("  CPU per request: plaintext %s, pipelined %s\n",
				ratios(y.plainCPU, p.plainCPU), ratios(y.pipedCPU, p.pipedCPU))
		}
	}
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// ratios formats the median of a[i]/b[i] and the ratios themselves.
func ratios(a, b []float64) string {
	rs := make([]float64, len(a))
	parts := make([]string, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
		parts[i] = fmt.Sprintf("%.2f", rs[i])
	}
	return fmt.Sprintf("%.2fx (%s)", median(rs), strings.Join(parts, " "))
}

// serve runs one server until killed.
func serve(kind, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String()) // the driver reads the address
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, hello)
	})
	switch kind {
	case "yieldio":
		// One listener per loop with SO_REUSEPORT, on the same port.
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		s := &server.Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Handler: h}
		log.Fatal(s.ListenAndServe())
	case "nethttp":
		log.Fatal(http.Serve(ln, h))
	case "fasthttp":
		s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.WriteString(hello)
		}}
		log.Fatal(s.Serve(ln))
	default:
		log.Fatalf("unknown server %q", kind)
	}
}

type child struct {
	cmd *exec.Cmd
	url string
	pid int
}

func startChild(kind string) *child {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	var cmd *exec.Cmd
	args := []string{"-serve", kind, "-addr", "127.0.0.1:0"}
	if *pin {
		cmd = exec.Command("taskset", append([]string{"-c", "0", self}, args...)...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	} else {
		cmd = exec.Command(self, args...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	if limit != nil {
		if err := limit.add(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			log.Fatalf("-server-cpu: %v", err)
		}
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		log.Fatalf("%s did not start: %v", kind, err)
	}
	c := &child{cmd: cmd, url: "http://" + strings.TrimSpace(line), pid: cmd.Process.Pid}
	// Wait until it answers (yieldio re-listens on the port).
	for i := 0; ; i++ {
		resp, err := http.Get(c.url + "/plaintext")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			log.Fatalf("%s does not answer: %v", kind, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	http.DefaultClient.CloseIdleConnections()
	return c
}

func (c *child) stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

var rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// run runs wrk against the child's url and returns the requests per
// second, the child's CPU time (user + system) per request in µs, and how
// busy wrk kept its CPUs (0 to 1).
func (c *child) run(url string, depth int) (rps, cpuPerReq, wrkBusy float64) {
	before := cpuTime(c.pid)
	rps, n, wrkBusy := runWrk(url, depth)
	used := cpuTime(c.pid) - before
	return rps, float64(used.Microseconds()) / float64(n), wrkBusy
}

// cpuTime returns the CPU time (user + system) a process has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis (utime and stime are fields 14 and 15).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		log.Fatalf("malformed /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is the unit of /proc's CPU times (USER_HZ), 100 on Linux.
const clockTicks = 100

var requestsRe = regexp.MustCompile(`([0-9]+) requests in`)

// runWrk runs wrk against url and returns its requests per second, the
// requests it completed and how busy it kept its CPUs (its CPU time over
// run time × threads); depth > 0 pipelines that many requests per write.
func runWrk(url string, depth int) (float64, int64, float64) {
	threads := 2
	var args []string
	if *pin {
		threads = max(1, runtime.NumCPU()-1)
		args = []string{"taskset", "-c", fmt.Sprintf("1-%d", runtime.NumCPU()-1), "wrk"}
	} else {
		args = []string{"wrk"}
	}
	args = append(args, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(*conns), "-d", duration.String(), "--latency")
	if depth > 0 {
		script, err := os.CreateTemp("", "pipeline-*.lua")
		if err != nil {
			log.Fatal(err)
		}
		defer os.Remove(script.Name())
		fmt.Fprintf(script, `init = function(args)
  local r = {}
  for i = 1, %d do r[i] = wrk.format(nil) end
  req = table.concat(r)
end
request = function() return req end
`, depth)
		script.Close()
		args = append(args, "-s", script.Name())
	}
	args = append(args, url)
	cmd := exec.Command(args[0], args[1:]...) // taskset execs wrk: one process
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("wrk: %v\n%s", err, out)
	}
	busy := float64(cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()) / float64(*duration) / float64(threads)
	m := rpsRe.FindSubmatch(out)
	if m == nil {
		log.Fatalf("no Requests/sec in wrk output:\n%s", out)
	}
	if strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
		log.Printf("wrk reported errors:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	n := requestsRe.FindSubmatch(out)
	if n == nil {
		log.Fatalf("no request count in wrk output:\n%s", out)
	}
	total, _ := strconv.ParseInt(string(n[1]), 10, 64)
	return v, total, busy
}

// idleCost opens idle keep-alive connections (each after one request) and
// returns the server's resident memory growth per connection.
func idleCost(c *child) float64 {
	host := strings.TrimPrefix(c.url, "http://")
	time.Sleep(500 * time.Millisecond)
	before := rss(c.pid)
	open := make([]net.Conn, 0, *idle)
	defer func() {
		for _, conn := range open {
			conn.Close()
		}
	}()
	req := []byte("GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n")
	buf := make([]byte, 4096)
	for range *idle {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			log.Fatalf("opening idle connection %d: %v", len(open), err)
		}
		conn.Write(req)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(buf); err != nil || !strings.Contains(string(buf[:n]), hello) {
			log.Fatalf("idle connection %d: %v", len(open), err)
		}
		open = append(open, conn)
	}
	time.Sleep(time.Second) // let the server settle
	after := rss(c.pid)
	return float64(after-before) / float64(len(open))
}

// rss returns a process's resident set size in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "kB")), 10, 64)
			return kb << 10
		}
	}
	log.Fatalf("no VmRSS for %d", pid)
	return 0
}

func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
