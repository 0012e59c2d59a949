package server

import (
	"bufio"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzRequestHead feeds arbitrary bytes to the request head parser. It must
// never panic; whatever it accepts must be unambiguous (a method that is a
// token, a version 1.x, a single Host, framing that is a plain length or
// chunked, never both); net/http's parser must accept it too, with the same
// framing; and errors use only the statuses the server documents.
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
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chun\u212aed\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\u0085\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\x7f\xc3\xa9\r\n\r\n",
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
		// A longer input must not move the end of a head already found.
		for cut := end; cut < len(in) && cut < end+8; cut++ {
			if _, e2, _ := findHead([]byte(in[:cut+1])); e2 != end {
				t.Fatalf("head end moved from %d to %d", end, e2)
			}
		}
		text := in[start:end]
		h := new(head)
		rerr := parseHead(text, h)
		if rerr != nil {
			switch rerr.code {
			case 400, 413, 414, 417, 431, 501, 505:
			default:
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
		if h.length >= 0 {
			if cl := h.header["Content-Length"]; len(cl) != 1 || cl[0] != strconv.FormatInt(h.length, 10) {
				t.Fatalf("Content-Length header %q for length %d", cl, h.length)
			}
		}
		u, rerr := h.requestURL(new(url.URL))
		if rerr != nil {
			if rerr.code != 400 {
				t.Fatalf("URL error status %d", rerr.code)
			}
			return
		}
		// Differential: net/http's parser agrees on accepting and framing.
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(text)))
		if err != nil {
			if strings.Contains(err.Error(), "Content-Length") && strings.Contains(text, ",") {
				return // "5, 5": a list RFC 9110 allows and net/http refuses
			}
			t.Fatalf("accepted what net/http rejects (%v): %q", err, text)
		}
		if !reflect.DeepEqual(u, req.URL) {
			t.Fatalf("URL differs: ours %#v, net/http %#v", u, req.URL)
		}
		chunked := len(req.TransferEncoding) > 0
		length := max(h.length, 0)
		if chunked != h.chunked || (!chunked && req.ContentLength != length) {
			t.Fatalf("framing differs: ours chunked=%v len=%d, net/http TE=%v CL=%d: %q",
				h.chunked, h.length, req.TransferEncoding, req.ContentLength, text)
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
