package server

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// Response header maps are recycled once their handler returns: whatever a
// handler put in its header (fields, trailer declarations, a Date, a
// Content-Length) must never show in a later response on the connection,
// and the next handler must find its header empty. Requests come pipelined
// and one after another.
func TestResponseHeaderDoesNotLeakIntoNextResponse(t *testing.T) {
	seen := make(chan string, 16)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if len(h) != 0 {
			select { // never block the loop
			case seen <- r.URL.Path + " found " + strings.Join(keysOf(h), ","):
			default:
			}
		}
		if r.URL.Path == "/set" {
			h.Set("X-Leak", "first")
			h.Set("Content-Type", "application/x-first")
			h.Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
			h.Set("Trailer", "X-Trail")
			h.Set("Cache-Control", "private")
			io.WriteString(w, "first")
			h.Set("X-Trail", "t")
			h.Set(http.TrailerPrefix+"X-Late", "l")
			return
		}
		io.WriteString(w, "plain")
	}))
	const set = "GET /set HTTP/1.1\r\nHost: x\r\n\r\n"
	const plain = "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n"
	check := func(t *testing.T, resps []*http.Response, bodies []string) {
		t.Helper()
		for i, resp := range resps {
			if bodies[i] != "plain" {
				continue
			}
			for _, k := range []string{"X-Leak", "Trailer", "Cache-Control", "X-Trail", "X-Late"} {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("response %d: %s: %q leaked from an earlier handler", i, k, v)
				}
			}
			if v := resp.Header.Get("Content-Type"); strings.Contains(v, "first") {
				t.Errorf("response %d: Content-Type %q leaked", i, v)
			}
			if v := resp.Header.Get("Date"); strings.Contains(v, "2001") {
				t.Errorf("response %d: Date %q leaked", i, v)
			}
			if len(resp.Trailer) != 0 {
				t.Errorf("response %d: trailers %v leaked", i, resp.Trailer)
			}
			if resp.ContentLength != int64(len("plain")) {
				t.Errorf("response %d: Content-Length %d", i, resp.ContentLength)
			}
		}
	}
	t.Run("pipelined", func(t *testing.T) {
		raw := strings.Repeat(set+plain, 4)
		resps, bodies, _ := exchangeN(t, ts.addr, raw, 8)
		if len(resps) != 8 {
			t.Fatalf("%d responses, want 8", len(resps))
		}
		check(t, resps, bodies)
	})
	t.Run("sequential", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", ts.addr, testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 3 {
			for _, req := range []string{set, plain} {
				io.WriteString(c, req)
				resps, bodies, _ := readResponsesN(t, c, 1, 0)
				if len(resps) != 1 {
					t.Fatalf("%d responses, want 1", len(resps))
				}
				check(t, resps, bodies)
			}
		}
	})
	close(seen)
	for s := range seen {
		t.Error(s)
	}
}

func keysOf(h http.Header) []string {
	var ks []string
	for k := range h {
		ks = append(ks, k)
	}
	return ks
}

// The Date a loop caches is renewed each second: responses on one
// connection, a second or more apart, carry the time they were sent.
func TestDateFollowsTheClock(t *testing.T) {
	ts := start(t, http.HandlerFunc(hello))
	c, err := net.DialTimeout("tcp", ts.addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func() time.Time {
		t.Helper()
		before := time.Now().Truncate(time.Second)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resps, _, _ := readResponsesN(t, c, 1, 0)
		after := time.Now()
		if len(resps) != 1 {
			t.Fatal("no response")
		}
		d, err := http.ParseTime(resps[0].Header.Get("Date"))
		if err != nil {
			t.Fatalf("Date %q: %v", resps[0].Header.Get("Date"), err)
		}
		if d.Before(before) || d.After(after) {
			t.Errorf("Date %v, sent between %v and %v", d, before, after)
		}
		return d
	}
	first := get()
	for range 3 {
		// Past the next second boundary.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
		if d := get(); !d.After(first) {
			t.Errorf("Date %v not after the earlier %v", d, first)
		}
	}
}

// Responses are recycled once their handler returned: a goroutine a
// handler left behind, using its ResponseWriter while the next request on
// the connection is being answered (quite possibly by the same recycled
// response), reaches nothing: every method is refused or inert, and the
// next response is the next handler's alone.
func TestLeftoverWriterDoesNotReachNextResponse(t *testing.T) {
	late := make(chan http.ResponseWriter, 1)
	results := make(chan []error, 1)
	second := fdpoll.NewFuture[struct{}]()
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/first":
			late <- w
			io.WriteString(w, "first")
		case "/second":
			w.Header().Set("X-Second", "yes")
			go func() {
				lw := <-late
				lw.Header().Set("X-Late", "1")
				lw.WriteHeader(http.StatusTeapot)
				rc := http.NewResponseController(lw)
				_, errWrite := lw.Write([]byte("forged"))
				_, errString := io.WriteString(lw, "forged")
				errs := []error{
					errWrite, errString, rc.Flush(),
					rc.SetReadDeadline(time.Now()), rc.SetWriteDeadline(time.Now()),
					rc.EnableFullDuplex(),
				}
				_, _, errHijack := rc.Hijack()
				results <- append(errs, errHijack)
				second.Complete(struct{}{}, nil)
			}()
			fdpoll.Await(r.Context(), second) // the leftover goroutine acts now
			io.WriteString(w, "second")
		}
	}))
	c, err := net.DialTimeout("tcp", ts.addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	if resps, _, _ := readResponsesN(t, c, 1, 0); len(resps) != 1 {
		t.Fatal("no first response")
	}
	io.WriteString(c, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	resps, bodies, _ := readResponsesN(t, c, 1, 100*time.Millisecond)
	if len(resps) != 1 {
		t.Fatalf("%d responses to the second request", len(resps))
	}
	resp := resps[0]
	if resp.StatusCode != 200 || bodies[0] != "second" || resp.Header.Get("X-Second") != "yes" || resp.Header.Get("X-Late") != "" {
		t.Errorf("second response: %d %q, header %v", resp.StatusCode, bodies[0], resp.Header)
	}
	for i, err := range <-results {
		if err == nil {
			t.Errorf("leftover call %d succeeded", i)
		}
	}
	// The connection still works.
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, bodies, _ := readResponsesN(t, c, 1, 0); len(bodies) != 1 || bodies[0] != "first" {
		t.Errorf("third response: %q", bodies)
	}
}

// A handler that does not read its request body returns; the server then
// drains the body, waiting for the client's rest of it. A goroutine the
// handler left behind writes during that wait: the write is refused and
// nothing of it reaches the connection.
func TestLeftoverWriterDuringBodyDrain(t *testing.T) {
	returned := make(chan struct{})
	wrote := make(chan error, 1)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			go func() {
				<-returned
				time.Sleep(100 * time.Millisecond) // the server is draining by now
				_, err := w.Write([]byte("forged"))
				wrote <- err
			}()
			defer close(returned)
		}
		io.WriteString(w, "ok")
	}))
	c, err := net.DialTimeout("tcp", ts.addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
	var werr error
	select {
	case werr = <-wrote:
	case <-time.After(testTimeout):
		t.Fatal("the leftover goroutine did not write")
	}
	io.WriteString(c, "67890")
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resps, bodies, _ := readResponsesN(t, c, 2, 200*time.Millisecond)
	if werr == nil {
		t.Error("a write after the handler returned succeeded")
	}
	if len(resps) != 2 || bodies[0] != "ok" || bodies[1] != "ok" {
		t.Errorf("responses %d, bodies %q; want two \"ok\"", len(resps), bodies)
	}
}
