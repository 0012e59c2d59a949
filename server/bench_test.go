package server

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func plaintext(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "Hello, World!")
}

// benchRequests sends rounds of depth pipelined requests on one connection
// and reads the responses; b.N counts requests. The client does not
// allocate, so allocs/op are the server's.
func benchRequests(b *testing.B, addr string, depth int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte(strings.Repeat("GET /plaintext HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n", depth))
	// Learn the size of one response.
	c.Write(req[:len(req)/depth])
	buf := make([]byte, 64<<10)
	n, _ := c.Read(buf)
	one := n
	if !bytes.Contains(buf[:n], []byte("Hello, World!")) {
		b.Fatalf("unexpected response %q", buf[:n])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += depth {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < one*depth; {
			n, err := c.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

// BenchmarkServer: yieldio's server, one loop, keep-alive requests one at a
// time (depth 1) and pipelined 16 deep.
func BenchmarkServer(b *testing.B) {
	ts := start(b, http.HandlerFunc(plaintext))
	b.Run("keepalive", func(b *testing.B) { benchRequests(b, ts.addr, 1) })
	b.Run("pipelined16", func(b *testing.B) { benchRequests(b, ts.addr, 16) })
}

// BenchmarkPeerNetHTTP: net/http's server, same handler, same client.
func BenchmarkPeerNetHTTP(b *testing.B) {
	s := httptest.NewServer(http.HandlerFunc(plaintext))
	defer s.Close()
	addr := strings.TrimPrefix(s.URL, "http://")
	b.Run("keepalive", func(b *testing.B) { benchRequests(b, addr, 1) })
	b.Run("pipelined16", func(b *testing.B) { benchRequests(b, addr, 16) })
}
