package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

const testTimeout = 30 * time.Second

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a Server on its own group, listening on loopback.
type testServer struct {
	*Server
	addr string
	log  *syncBuffer
	errc chan error
}

// start serves h on a new two-loop group; configure adjusts the Server
// before it starts. Everything is shut down when the test ends.
func start(t testing.TB, h http.Handler, configure ...func(*Server)) *testServer {
	t.Helper()
	g, err := fdpoll.NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	s := &Server{Addr: "127.0.0.1:0", Handler: h, Group: g, ErrorLog: log.New(logs, "", 0)}
	for _, fn := range configure {
		fn(s)
	}
	ts := &testServer{Server: s, log: logs, errc: make(chan error, 1)}
	go func() { ts.errc <- s.ListenAndServe() }()
	deadline := time.Now().Add(testTimeout)
	for len(s.Addrs()) == 0 {
		select {
		case err := <-ts.errc:
			t.Fatalf("ListenAndServe: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	ts.addr = s.Addrs()[0].String()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-ts.errc:
			if err != ErrServerClosed {
				t.Errorf("ListenAndServe returned %v", err)
			}
		case <-time.After(testTimeout):
			t.Error("ListenAndServe did not return after Close")
		}
		g.Close()
	})
	return ts
}

func (ts *testServer) url() string { return "http://" + ts.addr }

// client returns an HTTP client that does not share connections with other
// tests.
func (ts *testServer) client(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

// exchange sends raw bytes on a new connection, then reads every response
// until the server closes or stays silent for quiet. It reports the
// responses with their bodies read, and whether the server closed.
// methods, if given, are the methods of the requests in order, so that
// responses to HEAD are read without a body.
func exchange(t testing.TB, addr, raw string, quiet time.Duration, methods ...string) ([]*http.Response, []string, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponses(t, c, quiet, methods...)
}

// exchangeN is exchange for a known number of responses: it waits up to the
// test timeout for each, then only briefly for anything more.
func exchangeN(t testing.TB, addr, raw string, n int, methods ...string) ([]*http.Response, []string, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readResponsesN(t, c, n, 50*time.Millisecond, methods...)
}

func readResponses(t testing.TB, c net.Conn, quiet time.Duration, methods ...string) ([]*http.Response, []string, bool) {
	return readResponsesN(t, c, 0, quiet, methods...)
}

func readResponsesN(t testing.TB, c net.Conn, n int, quiet time.Duration, methods ...string) ([]*http.Response, []string, bool) {
	t.Helper()
	br := bufio.NewReader(c)
	var resps []*http.Response
	var bodies []string
	for {
		if len(resps) < n {
			c.SetReadDeadline(time.Now().Add(testTimeout))
		} else {
			c.SetReadDeadline(time.Now().Add(quiet))
		}
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if errorsAs(err, &ne) && ne.Timeout() {
				return resps, bodies, false
			}
			return resps, bodies, true
		}
		c.SetReadDeadline(time.Now().Add(testTimeout))
		req, _ := http.NewRequest("GET", "/", nil)
		if len(resps) < len(methods) {
			req.Method = methods[len(resps)]
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("reading response %d: %v", len(resps), err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body %d: %v", len(resps), err)
		}
		resps = append(resps, resp)
		bodies = append(bodies, string(b))
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "hello "+strings.TrimPrefix(r.URL.Path, "/"))
}
