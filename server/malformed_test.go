package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Malformed or hostile requests get the right status and a closed
// connection, and nothing after them is ever parsed as a request: every
// case is followed by a valid request that must not be answered.
func TestMalformedRequests(t *testing.T) {
	handled := make(chan string, 100)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		handled <- r.URL.Path
		io.WriteString(w, "ok")
	}), func(s *Server) {
		s.MaxHeaderBytes = 4096
		s.MaxRequestBodyBytes = 1000
	})
	const next = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name string
		req  string
		code int
	}{
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: x\r\n\r\n", 400},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bad version", "GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"HTTP/0.9", "GET / HTTP/0.9\r\nHost: x\r\n\r\n", 505},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
		{"bad field name", "GET / HTTP/1.1\r\nHost: x\r\nX\x01Y: z\r\n\r\n", 400},
		{"field name with space", "GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n", 400},
		{"CTL in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400},
		{"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"differing CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"differing CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!", 400},
		{"negative CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400},
		{"plus CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400},
		{"hex CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", 400},
		{"overflowing CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
		{"obs-fold first", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},
		{"TE not chunked last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"TE identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE gzip chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"TE unknown chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bare CR in header", "GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417},
		{"forbidden trailer", "POST / HTTP/1.1\r\nHost: x\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"bad CONNECT authority", "CONNECT a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"Kelvin-sign chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chun\u212aed\r\n\r\n0\r\n\r\n", 400},
		{"body over the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("x", 1001), 413},
		{"long URI", "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"long headers", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("v", 5000) + "\r\n\r\n", 431},
		{"many headers", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X: y\r\n", 1000) + "\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resps, bodies, closed := exchange(t, ts.addr, tc.req+next, 5*time.Second)
			if len(resps) != 1 || resps[0].StatusCode != tc.code {
				var got []int
				for _, r := range resps {
					got = append(got, r.StatusCode)
				}
				t.Fatalf("statuses %v (bodies %q), want one %d", got, bodies, tc.code)
			}
			if !closed {
				t.Error("connection left open")
			}
			select {
			case p := <-handled:
				if p == "/smuggled" {
					t.Fatal("the request after the bad one was served")
				}
			default:
			}
		})
	}
}

// Bad body framing is found while the handler reads; the connection is
// closed after the response and what follows is never parsed.
func TestMalformedChunkedBody(t *testing.T) {
	handled := make(chan string, 100)
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled <- r.URL.Path
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "bad body: "+err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	}))
	const next = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, body string }{
		{"not hex", "zz\r\nhello\r\n0\r\n\r\n"},
		{"overflow", "fffffffffffffffff\r\n"},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
		{"bare LF after data", "5\r\nhello\n0\r\n\r\n"},
		{"chunk longer than its size", "3\r\nhello\r\n0\r\n\r\n"},
		{"junk after size", "5 x\r\nhello\r\n0\r\n\r\n"},
		{"bad trailer", "0\r\nX : y\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + tc.body + next
			resps, _, closed := exchange(t, ts.addr, raw, 5*time.Second)
			if len(resps) != 1 || resps[0].StatusCode != 400 || !closed {
				t.Fatalf("%d responses, closed %v", len(resps), closed)
			}
			for len(handled) > 0 {
				if p := <-handled; p == "/smuggled" {
					t.Fatal("the request after the bad body was served")
				}
			}
		})
	}
}

// Leading empty lines before a request line are ignored (RFC 9112), and a
// bare LF ends a header line, as net/http accepts.
func TestLenientLineEndings(t *testing.T) {
	ts := start(t, http.HandlerFunc(hello))
	resps, bodies, _ := exchange(t, ts.addr, "\r\n\r\nGET /a HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
	if len(resps) != 2 || bodies[0] != "hello a" || bodies[1] != "hello b" {
		t.Fatalf("%d responses %q", len(resps), bodies)
	}
}
