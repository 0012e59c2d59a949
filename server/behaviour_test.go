package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/wsgiinput"
)

func TestSlowClientsAreCutOff(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			fdpoll.Sleep(r.Context(), 5*time.Second)
		}
		io.WriteString(w, "ok")
	}), func(s *Server) {
		s.ReadHeaderTimeout = 100 * time.Millisecond
		s.IdleTimeout = 150 * time.Millisecond
		s.WriteTimeout = 200 * time.Millisecond
	})
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		return err == nil || !(errors.As(err, &ne) && ne.Timeout())
	}
	t.Run("header never finishes", func(t *testing.T) {
		c, _ := net.Dial("tcp", ts.addr)
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		start := time.Now()
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("a half-sent head kept the connection open")
		}
		if d := time.Since(start); d < 80*time.Millisecond {
			t.Fatalf("closed after %v, before the header timeout", d)
		}
	})
	t.Run("never sends anything", func(t *testing.T) {
		c, _ := net.Dial("tcp", ts.addr)
		defer c.Close()
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("a silent connection stayed open")
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, _ := net.Dial("tcp", ts.addr)
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatal(resp, err)
		}
		io.ReadAll(resp.Body)
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("an idle connection outlived IdleTimeout")
		}
	})
	t.Run("handler past WriteTimeout", func(t *testing.T) {
		c, _ := net.Dial("tcp", ts.addr)
		defer c.Close()
		io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		start := time.Now()
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("a handler slower than WriteTimeout kept the connection")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})
}

func TestHandlerPanic(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("handler bug")
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/late":
			io.WriteString(w, strings.Repeat("x", 5000)) // head already sent
			panic("late bug")
		}
		io.WriteString(w, "fine")
	}))
	resps, bodies, closed := exchange(t, ts.addr, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET /fine HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if len(resps) != 1 || resps[0].StatusCode != 500 || !closed {
		t.Fatalf("%d responses %q, closed %v; want one 500 and a close", len(resps), bodies, closed)
	}
	if !strings.Contains(ts.log.String(), "handler bug") || !strings.Contains(ts.log.String(), "goroutine") {
		t.Errorf("no log line with the panic and its stack: %q", ts.log.String())
	}
	// A panic after the response started leaves it visibly truncated (no
	// last chunk) and closes the connection.
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	io.WriteString(c, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a response cut short by a panic read as complete")
	}
	before := ts.log.String()
	exchange(t, ts.addr, "GET /abort HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if strings.Contains(ts.log.String()[len(before):], "ErrAbortHandler") || strings.Contains(ts.log.String()[len(before):], "abort") {
		t.Error("http.ErrAbortHandler was logged")
	}
	// The loops keep serving.
	resps, bodies, _ = exchangeN(t, ts.addr, "GET /fine HTTP/1.1\r\nHost: x\r\n\r\n", 1)
	if len(resps) != 1 || bodies[0] != "fine" {
		t.Fatal("server stopped serving after panics")
	}
}

// A handler that does not read its body stops the connection from reading:
// the client's writes stall instead of the server buffering the upload.
func TestBodyFlowControl(t *testing.T) {
	release := fdpoll.NewFuture[struct{}]()
	got := make(chan int64, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fdpoll.Await(r.Context(), release)
		n, _ := io.Copy(io.Discard, r.Body)
		got <- n
		io.WriteString(w, "done")
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const total = 256 << 20
	io.WriteString(c, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", total))
	sent := make(chan int64, 1)
	go func() {
		var n int64
		buf := make([]byte, 1<<20)
		for n < total {
			c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			m, err := c.Write(buf[:min(len(buf), total-int(n))])
			n += int64(m)
			if err != nil {
				break
			}
		}
		sent <- n
	}()
	stalled := <-sent
	if stalled >= total {
		t.Fatal("the whole upload was accepted while the handler read nothing")
	}
	t.Logf("the client stalled after %d MiB", stalled>>20)
	release.Complete(struct{}{}, nil)
	c.SetWriteDeadline(time.Time{})
	go func() {
		buf := make([]byte, 1<<20)
		for n := stalled; n < total; {
			m, err := c.Write(buf[:min(len(buf), int(total-n))])
			n += int64(m)
			if err != nil {
				return
			}
		}
	}()
	select {
	case n := <-got:
		if n != total {
			t.Fatalf("handler read %d bytes, want %d", n, total)
		}
	case <-time.After(testTimeout):
		t.Fatal("upload did not finish")
	}
}

func TestFlushStreams(t *testing.T) {
	next := make(chan struct{})
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i < 2 {
				f := fdpoll.Go(r.Context(), func(context.Context) (int, error) { <-next; return 0, nil })
				fdpoll.Await(r.Context(), f)
			}
		}
	}))
	resp, err := ts.client(t).Get(ts.url() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		if i < 2 {
			next <- struct{}{} // the handler waits until we read the event
		}
	}
}

func TestHijack(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		go func() {
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			line, _ := rw.ReadString('\n')
			rw.WriteString("echo: " + line)
			rw.Flush()
		}()
	}))
	c, _ := net.Dial("tcp", ts.addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	// The line after the request is already buffered by the server when it
	// hijacks: it must reach the hijacker.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatal(resp, err)
	}
	line, err := br.ReadString('\n')
	if line != "echo: hello\n" {
		t.Fatalf("got %q %v", line, err)
	}
}

func TestConnState(t *testing.T) {
	var mu sync.Mutex
	var states []http.ConnState
	ts := start(t, http.HandlerFunc(hello), func(s *Server) {
		s.ConnState = func(c net.Conn, st http.ConnState) {
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
		}
	})
	exchangeN(t, ts.addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2)
	waitFor(t, "StateClosed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) > 0 && states[len(states)-1] == http.StateClosed
	})
	mu.Lock()
	defer mu.Unlock()
	want := []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateClosed}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
}

// The request context carries the handler's task; Body is a
// *wsgiinput.Body whose Next works as a future.
func TestRequestContextAndBodyNext(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fdpoll.LoopOf(r.Context()) == nil {
			t.Error("request context carries no task")
		}
		b, ok := r.Body.(*wsgiinput.Body)
		if !ok {
			t.Errorf("Body is %T", r.Body)
			return
		}
		var total int
		for {
			piece, err := fdpoll.Await(r.Context(), b.Next(r.Context()))
			total += len(piece)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
		fmt.Fprint(w, total)
	}))
	resp, err := ts.client(t).Post(ts.url(), "application/octet-stream", strings.NewReader(strings.Repeat("n", 300000)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "300000" {
		t.Fatalf("got %q", b)
	}
}

// The request context is cancelled when the client goes away.
func TestRequestContextCancelledOnDisconnect(t *testing.T) {
	cancelled := make(chan error, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-waitDone(r.Context())
		cancelled <- r.Context().Err()
	}))
	c, _ := net.Dial("tcp", ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("request context not cancelled after the client left")
	}
}

// waitDone waits for ctx in a task-friendly way: a future completed by
// context.AfterFunc.
func waitDone(ctx context.Context) <-chan struct{} {
	f := fdpoll.NewFuture[struct{}]()
	context.AfterFunc(ctx, func() { f.Complete(struct{}{}, nil) })
	fdpoll.Await(context.WithoutCancel(ctx), f)
	ch := make(chan struct{})
	close(ch)
	return ch
}

// WriteHeader with a 1xx status sends it at once; 100 Continue sent by hand
// is not sent again automatically.
func TestInformationalResponses(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusContinue)
		b, _ := io.ReadAll(r.Body)
		w.Header().Del("Link")
		fmt.Fprintf(w, "got %s", b)
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []int{103, 100} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("want %d, got %v %v", want, resp, err)
		}
		if want == 103 && resp.Header.Get("Link") == "" {
			t.Error("103 without its Link header")
		}
	}
	io.WriteString(c, "body")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("final response %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "got body" {
		t.Fatalf("body %q", b)
	}
}
