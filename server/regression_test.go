package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/wsgiinput"
)

// Framing tokens are trimmed and compared in ASCII only: Unicode folding
// would let a proxy and this server disagree on where a body ends.
func TestFramingTokensAreASCII(t *testing.T) {
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chun\u212aed\r\n\r\n",  // KELVIN SIGN
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\u00a0\r\n\r\n", // NBSP
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\u0085\r\n\r\n",          // NEL
	} {
		h := new(head)
		_, nerr := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err := parseHead(raw, h); err == nil {
			t.Errorf("accepted %q: chunked=%v length=%d (net/http: %v)", raw, h.chunked, h.length, nerr)
		}
	}
}

// A handler that panics (or aborts) mid-response does not get its response
// completed: the client must see the failure.
func TestAbortedResponseIsNotCompleted(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/streamed" {
			w.Write(make([]byte, 3000)) // > holdBack: head sent, chunked
		} else {
			w.WriteHeader(200)
			io.WriteString(w, "partial") // held back
		}
		panic(http.ErrAbortHandler)
	}))
	c := ts.client(t)
	for _, p := range []string{"/streamed", "/held"} {
		resp, err := c.Get(ts.url() + p)
		if err != nil {
			continue // aborted: fine
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: aborted handler's response read as complete (%d bytes, status %d)", p, len(b), resp.StatusCode)
		}
	}
}

// A Write after the handler returned must not reach the connection, which
// by then carries the next response.
func TestWriteAfterHandlerReturnedIsRefused(t *testing.T) {
	idle := make(chan struct{}, 4)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			w.(http.Flusher).Flush() // chunked
			go func() {
				<-idle // the response is finished and the connection idle
				w.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"))
			}()
			return
		}
		io.WriteString(w, "second")
	}), func(s *Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateIdle {
				idle <- struct{}{}
			}
		}
	})
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	time.Sleep(200 * time.Millisecond)
	io.WriteString(c, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("second response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "second" {
		t.Fatalf("second request got %q", b)
	}
}

// Shutdown closes an idle TLS keep-alive connection (whose task is parked
// reading).
func TestShutdownClosesIdleTLS(t *testing.T) {
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cfg := cert.TLS.Clone()
	pool := cert.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	cert.Close()
	ts := start(t, http.HandlerFunc(hello), func(s *Server) { s.TLSConfig = cfg })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: testTimeout}).Get("https://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with one idle TLS keep-alive connection: %v", err)
	}
}

// Shutdown closes a keep-alive connection holding a partial head.
func TestShutdownClosesPartialHead(t *testing.T) {
	ts := start(t, http.HandlerFunc(hello))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	io.WriteString(c, "GET /") // and stall
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with a stalled partial head: %v", err)
	}
}

// A hijacked connection does not keep the server's ReadTimeout deadline.
func TestHijackClearsDeadlines(t *testing.T) {
	res := make(chan error, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			res <- err
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
		rw.Flush()
		_, err = rw.ReadString('\n')
		res <- err
	}), func(s *Server) { s.ReadTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
	http.ReadResponse(bufio.NewReader(c), nil)
	time.Sleep(700 * time.Millisecond)
	io.WriteString(c, "ping\n")
	if err := <-res; err != nil {
		t.Fatalf("hijacked connection read: %v", err)
	}
}

// Hijack from another goroutine (in fdpoll.Go) works, with timeouts set,
// and leaves nothing half-done for Shutdown.
func TestHijackFromWorkerGoroutine(t *testing.T) {
	res := make(chan error, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := fdpoll.Await(r.Context(), fdpoll.Go(r.Context(), func(context.Context) (net.Conn, error) {
			c, _, err := w.(http.Hijacker).Hijack()
			return c, err
		}))
		if conn != nil {
			conn.Close()
		}
		res <- err
	}), func(s *Server) { s.ReadHeaderTimeout = 5 * time.Second })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if err := <-res; err != nil {
		t.Errorf("Hijack inside fdpoll.Go: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after that: %v (conns %d)", err, ts.nconns.Load())
	}
}

// The WriteHeader(101)-then-Hijack pattern of websocket libraries works.
func TestHijackAfterWriteHeader101(t *testing.T) {
	res := make(chan error, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "x")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		res <- err
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
	if err := <-res; err != nil {
		t.Fatalf("Hijack after WriteHeader(101): %v", err)
	}
}

// With EnableFullDuplex the response head does not wait for the request
// body to be drained.
func TestFullDuplexSkipsDrain(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Error(err)
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		io.Copy(w, r.Body)
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatalf("full-duplex response head did not arrive before the body ended: %v", err)
	}
}

// The input buffer does not go back to the pool while a body read is in
// flight (a Next abandoned on timeout): that read would then write into
// another connection's request.
func TestInputBufferNotReusedWhileRead(t *testing.T) {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	s := &Server{Addr: "127.0.0.1:0", Group: g, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/upload" {
				ctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond)
				defer cancel()
				b := r.Body.(*wsgiinput.Body)
				if _, err := fdpoll.Await(ctx, b.Next(ctx)); err != nil {
					w.WriteHeader(http.StatusRequestTimeout)
				}
				return
			}
			io.WriteString(w, "path="+r.URL.Path)
		})}
	go s.ListenAndServe()
	defer s.Close()
	for len(s.Addrs()) == 0 {
		time.Sleep(time.Millisecond)
	}
	addr := s.Addrs()[0].String()
	victim := "GET /victim/aaaa HTTP/1.1\r\n"
	evil := "GET /attack/bbbb HTTP/1.1\r\n"
	for attempt := 0; attempt < 10; attempt++ {
		a, _ := net.Dial("tcp", addr)
		a.SetDeadline(time.Now().Add(testTimeout))
		io.WriteString(a, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(a), nil); err != nil || resp.StatusCode != 408 {
			t.Fatal(resp, err)
		}
		b, _ := net.Dial("tcp", addr)
		b.SetDeadline(time.Now().Add(testTimeout))
		io.WriteString(b, victim)
		time.Sleep(50 * time.Millisecond)
		io.WriteString(a, evil) // attacker's "body" bytes, after its response
		time.Sleep(50 * time.Millisecond)
		io.WriteString(b, "Host: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(b), nil)
		var body []byte
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
		}
		a.Close()
		b.Close()
		if string(body) != "path=/victim/aaaa" {
			t.Fatalf("attempt %d: victim's request became %q (err %v)", attempt, body, err)
		}
	}
}

// A read or write deadline a handler sets (http.ResponseController) ends
// with its request: the next request on the connection is served.
func TestHandlerDeadlineEndsWithRequest(t *testing.T) {
	for _, kind := range []string{"read", "write"} {
		t.Run(kind, func(t *testing.T) {
			ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/a" {
					rc := http.NewResponseController(w)
					if kind == "read" {
						rc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					} else {
						rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					}
				}
				io.WriteString(w, "ok")
			}))
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(testTimeout))
			br := bufio.NewReader(c)
			for i, p := range []string{"/a", "/b"} {
				if i == 1 {
					time.Sleep(300 * time.Millisecond)
				}
				io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %s: %v", p, err)
				}
				io.ReadAll(resp.Body)
			}
		})
	}
}
