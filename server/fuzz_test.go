package server

import (
	"strings"
	"testing"
)

// FuzzRequestHead feeds arbitrary bytes to the request head parser. It must
// never panic, and whatever it accepts must be unambiguous: a method that is
// a token, a version 1.x, a Host header that is single, and framing that is
// either a length or chunked, never both.
//
// Run longer by hand: go test -run '^$' -fuzz FuzzRequestHead -fuzztime 5m ./server
func FuzzRequestHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /p?q=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET http://a/b HTTP/1.0\nConnection: keep-alive\n\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTrailer: X\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		start, end, lineEnd := findHead([]byte(in))
		if end == 0 {
			if lineEnd > len(in) || start > len(in) {
				t.Fatalf("findHead out of range: %d %d %d", start, end, lineEnd)
			}
			return
		}
		if start > end || end > len(in) || lineEnd > end {
			t.Fatalf("findHead out of range: %d %d %d", start, end, lineEnd)
		}
		h := new(head)
		rerr := parseHead(in[start:end], h)
		if rerr != nil {
			if rerr.code < 400 || rerr.code > 599 {
				t.Fatalf("error status %d", rerr.code)
			}
			return
		}
		if h.major != 1 || !isToken(h.method) || h.target == "" {
			t.Fatalf("accepted a bad request line: %+v", h)
		}
		if h.chunked && h.length >= 0 {
			t.Fatal("accepted both chunked and a length")
		}
		if _, ok := h.header["Transfer-Encoding"]; ok {
			t.Fatal("Transfer-Encoding left in the header after framing")
		}
		if len(h.header["Host"]) > 1 || (h.minor >= 1 && len(h.header["Host"]) != 1) {
			t.Fatalf("accepted Host %q", h.header["Host"])
		}
		for k, vs := range h.header {
			if !isToken(k) {
				t.Fatalf("accepted field name %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("accepted field value %q", v)
				}
			}
		}
		if _, rerr := h.requestURL(); rerr != nil && rerr.code != 400 {
			t.Fatalf("URL error status %d", rerr.code)
		}
	})
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
