package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// writeSyscalls reads how many write syscalls this process has made.
func writeSyscalls(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("need /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no syscw in /proc/self/io")
	return 0
}

// The responses to pipelined requests answered in one loop iteration leave
// in one write syscall.
func TestPipelinedResponsesCoalesce(t *testing.T) {
	ts := start(t, http.HandlerFunc(hello))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reqs := strings.Repeat("GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 16)
	// Warm up the connection (first request, buffers), then measure.
	exchangeOn(t, c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 1)
	// The count is the whole process's: the Go runtime may write too (to
	// wake its poller), so the fewest over a few tries is what counts.
	fewest := -1
	for range 5 {
		before := writeSyscalls(t)
		exchangeOn(t, c, reqs, 16)
		writes := writeSyscalls(t) - before - 1 // the client's one write
		if fewest < 0 || writes < fewest {
			fewest = writes
		}
		if fewest == 1 {
			return
		}
	}
	t.Fatalf("16 pipelined responses took at least %d write syscalls, want 1", fewest)
}

func exchangeOn(t *testing.T, c net.Conn, raw string, n int) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	want := n * len("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 7\r\n\r\nhello x")
	buf := make([]byte, want+1024)
	got := 0
	c.SetReadDeadline(time.Now().Add(testTimeout))
	for got < want {
		m, err := c.Read(buf[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += m
	}
}

func TestKeepAlivesDisabled(t *testing.T) {
	ts := start(t, http.HandlerFunc(hello), func(s *Server) { s.SetKeepAlivesEnabled(false) })
	resps, _, closed := exchange(t, ts.addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || !resps[0].Close || !closed {
		t.Fatalf("%d responses, closed %v", len(resps), closed)
	}
}

type ctxKey string

func TestContextHooks(t *testing.T) {
	got := make(chan string, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		got <- fmt.Sprintf("%v %v %v", r.Context().Value(ctxKey("base")), r.Context().Value(ctxKey("conn")), la != nil && strings.HasPrefix(la.String(), "127.0.0.1:"))
	}), func(s *Server) {
		s.BaseContext = func(net.Listener) context.Context {
			return context.WithValue(context.Background(), ctxKey("base"), "b")
		}
		s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey("conn"), "c")
		}
	})
	exchangeN(t, ts.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1)
	if v := <-got; v != "b c true" {
		t.Fatalf("handler saw %q", v)
	}
}

func TestChunkedBodyOverLimit(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // hits the limit; the server answers 413
	}), func(s *Server) { s.MaxRequestBodyBytes = 10 })
	body := "5\r\n01234\r\n5\r\n56789\r\n5\r\nabcde\r\n0\r\n\r\n"
	resps, _, closed := exchange(t, ts.addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+body, 5*time.Second)
	if len(resps) != 1 || resps[0].StatusCode != http.StatusRequestEntityTooLarge || !closed {
		t.Fatalf("%d responses, closed %v", len(resps), closed)
	}
}

// Serve takes a listener from the net package: one loop accepts and hands
// connections to all of them.
func TestServeNetListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := fdpoll.NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	s := &Server{Handler: http.HandlerFunc(hello), Group: g}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	for i := range 4 {
		resps, bodies, _ := exchangeN(t, ln.Addr().String(), fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i), 1)
		if len(resps) != 1 || bodies[0] != fmt.Sprintf("hello %d", i) {
			t.Fatalf("request %d: %q", i, bodies)
		}
	}
	s.Close()
	if err := <-errc; err != ErrServerClosed {
		t.Fatalf("Serve = %v", err)
	}
}
