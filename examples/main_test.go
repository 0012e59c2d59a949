package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/server"
)

// The demo's handlers, on yieldio's server and on net/http alike.
func TestDemoEndpoints(t *testing.T) {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// /db itself is TestDBHandler's; here it is the stand-in main mounts
	// when no database could be had.
	noDB := unavailable(errors.New("no database in this test"))
	s := &server.Server{Addr: "127.0.0.1:0", Handler: newMux(noDB), Group: g}
	go s.ListenAndServe()
	defer s.Close()
	for len(s.Addrs()) == 0 {
		time.Sleep(time.Millisecond)
	}
	std := httptest.NewServer(newMux(noDB))
	defer std.Close()

	for name, base := range map[string]string{"yieldio": "http://" + s.Addrs()[0].String(), "net/http": std.URL} {
		t.Run(name, func(t *testing.T) {
			c := &http.Client{Timeout: 20 * time.Second}
			get := func(path string) (int, string) {
				resp, err := c.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, body := get("/"); code != 200 || !strings.Contains(body, "/wait") {
				t.Errorf("index: %d %q", code, body)
			}
			if _, body := get("/wait?delay=10ms&timeout=5s"); !strings.Contains(body, `read "ping"`) {
				t.Errorf("wait: %q", body)
			}
			if _, body := get("/wait?delay=2s&timeout=20ms"); !strings.Contains(body, "timed out") {
				t.Errorf("wait with timeout: %q", body)
			}
			if code, _ := get("/wait?delay=forever"); code != 400 {
				t.Errorf("bad wait: %d", code)
			}
			resp, err := c.Get(base + "/ticks?n=3&every=10ms")
			if err != nil {
				t.Fatal(err)
			}
			events := 0
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: tick") {
					events++
				}
			}
			resp.Body.Close()
			if events != 3 {
				t.Errorf("ticks: %d events", events)
			}
			resp, err = c.Post(base+"/hash", "application/octet-stream", strings.NewReader("abc"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad of 3 bytes") {
				t.Errorf("hash: %q", b)
			}
			if code, body := get("/db?id=1"); code != 503 || !strings.Contains(body, `"error":"no database in this test"`) {
				t.Errorf("db without a database: %d %q", code, body)
			}
		})
	}
}
