package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

func TestNetHTTPClient(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		sum := sha256.Sum256(body)
		fmt.Fprintf(w, "%s %s %d %x", r.Method, r.URL.RequestURI(), len(body), sum[:4])
	}))
	c := ts.client(t)
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	do := func(method, path string, body io.Reader, n int) {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctxTimeout(t), trace), method, ts.url()+path, body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(got), fmt.Sprintf("%s %s %d ", method, path, n)) {
			t.Errorf("%s %s: %q", method, path, got)
		}
	}
	do("GET", "/a?x=1", nil, 0)
	do("POST", "/fixed", strings.NewReader(strings.Repeat("x", 100000)), 100000)
	// An io.Reader of unknown length is sent chunked.
	do("POST", "/chunked", io.MultiReader(strings.NewReader(strings.Repeat("y", 70000))), 70000)
	do("PUT", "/empty", strings.NewReader(""), 0)
	do("GET", "/b", nil, 0)
	if len(reused) != 5 || reused[0] || !reused[1] || !reused[2] || !reused[3] || !reused[4] {
		t.Errorf("connection reuse %v, want one connection for all", reused)
	}
}

func TestExpectContinueWithNetHTTPClient(t *testing.T) {
	var sawBody []int
	var mu sync.Mutex
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			http.Error(w, "no thanks", http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		sawBody = append(sawBody, len(b))
		mu.Unlock()
		fmt.Fprintf(w, "got %d", len(b))
	}))
	tr := &http.Transport{ExpectContinueTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: testTimeout}
	for _, path := range []string{"/accept", "/reject"} {
		req, _ := http.NewRequest("POST", ts.url()+path, strings.NewReader(strings.Repeat("z", 5000)))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s: the client waited out ExpectContinueTimeout", path)
		}
		switch path {
		case "/accept":
			if string(b) != "got 5000" {
				t.Errorf("accept: %q", b)
			}
		case "/reject":
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("reject: %d", resp.StatusCode)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sawBody) != 1 {
		t.Errorf("handler read bodies %v", sawBody)
	}
}

// A handler that never reads a 100-continue body gets its response out and
// the connection is closed, since the body was never sent.
func TestExpectContinueRawNeverRead(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "not reading")
	}))
	resps, bodies, closed := exchange(t, ts.addr,
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", 2*time.Second)
	if len(resps) != 1 || resps[0].StatusCode != 200 || bodies[0] != "not reading" {
		t.Fatalf("responses %v %q", resps, bodies)
	}
	if !closed {
		t.Error("connection kept open with an unsent body pending")
	}
}

func TestCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required for this test (.ci/run installs it)")
	}
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Proto", r.Proto)
		fmt.Fprintf(w, "%s %d %s", r.Method, n, hex.EncodeToString(h.Sum(nil))[:8])
	}))
	big := strings.Repeat("0123456789", 200000) // 2 MB: curl sends Expect: 100-continue
	sum := sha256.Sum256([]byte(big))
	want := hex.EncodeToString(sum[:])[:8]
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"get", []string{ts.url() + "/"}, "GET 0 "},
		{"http1.0", []string{"--http1.0", ts.url() + "/"}, "GET 0 "},
		{"post with expect", []string{"--data-binary", "@-", ts.url() + "/"}, "POST 2000000 " + want},
		{"chunked upload", []string{"-H", "Transfer-Encoding: chunked", "--data-binary", "@-", ts.url() + "/"}, "POST 2000000 " + want},
		{"head", []string{"-I", ts.url() + "/"}, "HTTP/1.1 200 OK"},
		{"two on one connection", []string{ts.url() + "/1", ts.url() + "/2"}, "GET 0 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("curl", append([]string{"-sS", "--max-time", "20"}, tc.args...)...)
			if strings.Contains(strings.Join(tc.args, " "), "@-") {
				cmd.Stdin = strings.NewReader(big)
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("curl %v: %v\n%s", tc.args, err, out)
			}
			if tc.name == "two on one connection" && strings.Count(string(out), "GET 0") != 2 {
				t.Fatalf("curl output %q", out)
			}
		})
	}
}

// Many requests written at once are answered in order, and their responses
// leave in few writes.
func TestPipelining(t *testing.T) {
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			fdpoll.Sleep(r.Context(), 20*time.Millisecond)
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", r.URL.Path, b)
	}))
	var raw strings.Builder
	var want []string
	for i := range 16 {
		path := fmt.Sprintf("/%d", i)
		if i == 3 {
			path = "/slow"
		}
		if i%4 == 1 {
			fmt.Fprintf(&raw, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody", path)
			want = append(want, path+":body")
		} else if i%4 == 2 {
			fmt.Fprintf(&raw, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nck\r\n0\r\n\r\n", path)
			want = append(want, path+":ck")
		} else {
			fmt.Fprintf(&raw, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
			want = append(want, path+":")
		}
	}
	resps, bodies, closed := exchange(t, ts.addr, raw.String(), time.Second)
	if closed || len(resps) != 16 {
		t.Fatalf("%d responses, closed %v", len(resps), closed)
	}
	for i := range want {
		if bodies[i] != want[i] {
			t.Errorf("response %d: %q, want %q", i, bodies[i], want[i])
		}
	}
}

func TestHTTP10KeepAlive(t *testing.T) {
	ts := start(t, http.HandlerFunc(hello))
	resps, _, closed := exchange(t, ts.addr,
		"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\nGET /c HTTP/1.0\r\n\r\n", time.Second)
	if len(resps) != 2 || !closed {
		t.Fatalf("%d responses, closed %v; want 2 then close", len(resps), closed)
	}
	if resps[0].Header.Get("Connection") != "keep-alive" || resps[0].ContentLength != int64(len("hello a")) {
		t.Errorf("first response: %v", resps[0].Header)
	}
}

func TestShutdownWithRequestsInFlight(t *testing.T) {
	release := fdpoll.NewFuture[struct{}]()
	started := make(chan struct{}, 4)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		fdpoll.Await(r.Context(), release)
		io.WriteString(w, "finished")
	}))
	c := ts.client(t)
	results := make(chan string, 2)
	for range 2 {
		go func() {
			resp, err := c.Get(ts.url() + "/")
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(b)
		}()
	}
	<-started
	<-started
	// An idle keep-alive connection is closed by Shutdown.
	idle, _, _ := exchange(t, ts.addr, "", 10*time.Millisecond)
	_ = idle
	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.Shutdown(ctxTimeout(t)) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with requests in flight", err)
	default:
	}
	if _, err := c.Get(ts.url() + "/"); err == nil {
		t.Error("a new request succeeded after Shutdown began")
	}
	release.Complete(struct{}{}, nil)
	for range 2 {
		if r := <-results; r != "finished" {
			t.Errorf("in-flight request: %q", r)
		}
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-ts.errc:
		if err != ErrServerClosed {
			t.Fatalf("ListenAndServe = %v", err)
		}
		ts.errc <- err // for the cleanup
	case <-time.After(testTimeout):
		t.Fatal("ListenAndServe did not return")
	}
}

func TestTLS(t *testing.T) {
	cert := httptest.NewTLSServer(http.NotFoundHandler())
	cfg := cert.TLS.Clone()
	pool := cert.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	cert.Close()
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "tls=%v proto=%s len=%d", r.TLS != nil, r.Proto, len(b))
	}), func(s *Server) { s.TLSConfig = cfg })
	tr := &http.Transport{TLSClientConfig: cfg.Clone()}
	tr.TLSClientConfig.RootCAs = pool
	tr.TLSClientConfig.ServerName = "example.com"
	tr.TLSClientConfig.Certificates = nil
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: testTimeout}
	for i := range 3 {
		resp, err := c.Post("https://"+ts.addr+"/", "text/plain", bytes.NewReader(make([]byte, i*50000)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("tls=true proto=HTTP/1.1 len=%d", i*50000); string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	}
}
