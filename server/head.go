package server

import (
	"bytes"
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/yieldio/yieldio/wsgiinput"
)

// A head is a parsed request line and header section.
type head struct {
	method     string
	target     string
	proto      string
	major      int
	minor      int
	header     http.Header
	host       string
	length     int64 // Content-Length, -1 if absent
	chunked    bool
	te         []string // Transfer-Encoding as received, for Request.TransferEncoding
	close      bool     // Connection: close
	keepAlive  bool     // Connection: keep-alive
	expect100  bool
	trailerKey []string // fields announced by Trailer

	// Memory for the request's long-lived parts, which parseHead and
	// serveRequest fill; nil in tests of the parser alone.
	mem *reqMem
}

// A reqMem holds, in one allocation, what a request needs beyond its head
// text, its header map and the http.Request: the front of its response
// writer, its URL and the backing of its header values. A handler that keeps the request
// keeps all of it, which is memory, not sharing: none of it is reused.
type reqMem struct {
	w      writer
	url    url.URL
	values [memValues]string
}

// memValues is how many header fields a reqMem has room for; a request
// with more gets its values from a slice of their own.
const memValues = 4

// findHead looks for a complete request head at the start of buf, after
// any empty lines (which RFC 9112 lets a server ignore). It returns where
// the head starts and ends (after its final empty line); end is 0 while the
// head is incomplete. lineEnd is the end of the request line, or 0 if that
// is incomplete too (for telling 414 from 431).
func findHead(buf []byte) (start, end, lineEnd int) {
	for start < len(buf) {
		switch {
		case buf[start] == '\n':
			start++
		case buf[start] == '\r' && start+1 < len(buf) && buf[start+1] == '\n':
			start += 2
		case buf[start] == '\r' && start+1 == len(buf):
			return start, 0, 0
		default:
			goto body
		}
	}
	return start, 0, 0
body:
	i := start
	for {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return start, 0, lineEnd
		}
		i += j + 1
		if lineEnd == 0 {
			lineEnd = i
		}
		// A line that is empty ("\n" or "\r\n") ends the head.
		if i < len(buf) && buf[i] == '\n' {
			return start, i + 1, lineEnd
		}
		if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
			return start, i + 2, lineEnd
		}
		if i >= len(buf) || (buf[i] == '\r' && i+1 >= len(buf)) {
			return start, 0, lineEnd
		}
	}
}

// commonKeys interns the canonical form of frequent field names, so that
// parsing them allocates nothing.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
		"Cookie", "Expect", "Host", "If-Match", "If-Modified-Since", "If-None-Match",
		"Origin", "Pragma", "Range", "Referer", "Te", "Trailer", "Transfer-Encoding",
		"Upgrade", "User-Agent", "Via", "X-Forwarded-For", "X-Forwarded-Proto",
		"X-Real-Ip", "X-Request-Id", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest",
		"Upgrade-Insecure-Requests", "Dnt", "Keep-Alive",
	} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	return m
}()

// parseHead parses a complete head (as found by findHead, without leading
// empty lines) into h. text is the head as a string: every string of the
// result is a substring of it, so parsing allocates little.
func parseHead(text string, h *head) *requestError {
	*h = head{length: -1, mem: h.mem}
	nl := strings.IndexByte(text, '\n')
	line, ok := trimEOL(text[:nl+1])
	if !ok {
		return badRequest("bare CR in request line")
	}
	if err := h.parseRequestLine(line); err != nil {
		return err
	}
	rest := text[nl+1:]
	nfields := strings.Count(rest, "\n")
	h.header = make(http.Header, nfields)
	var values []string
	if h.mem != nil && nfields <= memValues {
		values = h.mem.values[:nfields]
	} else {
		values = make([]string, nfields)
	}
	nvalues := 0
	hosts := 0
	var seen uint8 // which of the fields interpret reads are present
	for {
		nl := strings.IndexByte(rest, '\n')
		line, ok := trimEOL(rest[:nl+1])
		rest = rest[nl+1:]
		if !ok {
			return badRequest("bare CR in header")
		}
		if line == "" {
			break
		}
		key, val, err := wsgiinput.SplitField(line)
		if err != nil {
			var fe *wsgiinput.FramingError
			errors.As(err, &fe)
			return badRequest(fe.Reason)
		}
		if k, ok := commonKeys[key]; ok {
			key = k
		} else {
			key = textproto.CanonicalMIMEHeaderKey(key)
		}
		if vs, ok := h.header[key]; ok {
			h.header[key] = append(vs, val)
		} else {
			values[nvalues] = val
			h.header[key] = values[nvalues : nvalues+1 : nvalues+1]
			nvalues++
		}
		switch key {
		case "Host":
			hosts++
			h.host = val
		case "Connection":
			seen |= seenConnection
		case "Expect":
			seen |= seenExpect
		case "Trailer":
			seen |= seenTrailer
		case "Transfer-Encoding", "Content-Length":
			seen |= seenFraming
		}
	}
	return h.interpret(hosts, seen)
}

// trimEOL removes the line ending (CRLF, or a bare LF, which RFC 9112 lets
// a recipient accept in the head). A CR anywhere else is invalid.
func trimEOL(line string) (string, bool) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	return line, strings.IndexByte(line, '\r') < 0
}

func (h *head) parseRequestLine(line string) *requestError {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return badRequest("malformed request line")
	}
	if !wsgiinput.IsToken(method) {
		return badRequest("invalid method")
	}
	if target == "" {
		return badRequest("empty request target")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return badRequest("invalid character in request target")
		}
	}
	major, minor, ok := parseVersion(proto)
	if !ok {
		return badRequest("malformed HTTP version")
	}
	if major != 1 {
		return &requestError{code: http.StatusHTTPVersionNotSupported, reason: "unsupported protocol version " + proto}
	}
	h.method, h.target, h.proto, h.major, h.minor = method, target, proto, major, minor
	return nil
}

// parseVersion parses "HTTP/d.d".
func parseVersion(v string) (major, minor int, ok bool) {
	switch v {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(v) != 8 || !strings.HasPrefix(v, "HTTP/") || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

// Bits of the fields a head has, for interpret.
const (
	seenConnection uint8 = 1 << iota
	seenExpect
	seenTrailer
	seenFraming // Transfer-Encoding or Content-Length
)

// interpret checks and extracts what the server acts on: Host, framing,
// connection management and expectations. seen says which of them the head has (bits seenConnection...), so absent
// ones cost no lookup; hosts counts the Host fields, and h.host is the last.
func (h *head) interpret(hosts int, seen uint8) *requestError {
	switch {
	case hosts > 1:
		return badRequest("too many Host headers")
	case hosts == 0 && h.minor >= 1:
		return badRequest("missing required Host header")
	}
	if hosts == 1 && !validHost(h.host) {
		return badRequest("malformed Host header")
	}
	if seen&seenConnection != 0 {
		h.connectionOptions()
	}
	if seen&seenFraming != 0 {
		if err := h.framing(); err != nil {
			return err
		}
	}
	if seen&seenExpect != 0 {
		if ex := h.header["Expect"]; len(ex) != 1 || !asciiEqualFold(ex[0], "100-continue") {
			return &requestError{code: http.StatusExpectationFailed, reason: "unsupported Expect"}
		}
		h.expect100 = h.minor >= 1
	}
	if seen&seenTrailer != 0 {
		return h.trailerDeclarations()
	}
	return nil
}

// connectionOptions reads the close and keep-alive options of Connection.
func (h *head) connectionOptions() {
	for _, v := range h.header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			switch tok = textproto.TrimString(tok); {
			case asciiEqualFold(tok, "close"):
				h.close = true
			case asciiEqualFold(tok, "keep-alive"):
				h.keepAlive = true
			}
		}
	}
}

// trailerDeclarations reads the fields Trailer announces.
func (h *head) trailerDeclarations() *requestError {
	for _, v := range h.header["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = textproto.TrimString(k); k == "" {
				continue
			}
			if !wsgiinput.IsToken(k) {
				return badRequest("invalid Trailer field name")
			}
			switch k = textproto.CanonicalMIMEHeaderKey(k); k {
			case "Content-Length", "Transfer-Encoding", "Trailer":
				return badRequest("field not allowed in a trailer: " + k)
			}
			h.trailerKey = append(h.trailerKey, k)
		}
	}
	return nil
}

// framing decides how the body is delimited (RFC 9112 section 6), refusing
// anything ambiguous: the classic request-smuggling shapes are errors.
func (h *head) framing() *requestError {
	te, hasTE := h.header["Transfer-Encoding"]
	cl, hasCL := h.header["Content-Length"]
	if hasTE && hasCL {
		return badRequest("both Transfer-Encoding and Content-Length")
	}
	if hasTE {
		if h.minor == 0 {
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		var codings []string
		for _, v := range te {
			for c := range strings.SplitSeq(v, ",") {
				c = textproto.TrimString(c)
				if !wsgiinput.IsToken(c) {
					return badRequest("invalid transfer coding")
				}
				codings = append(codings, c)
			}
		}
		if !asciiEqualFold(codings[len(codings)-1], "chunked") {
			return badRequest("chunked is not the final transfer coding")
		}
		for _, c := range codings[:len(codings)-1] {
			if asciiEqualFold(c, "chunked") {
				return badRequest("chunked applied more than once")
			}
		}
		if len(codings) > 1 {
			return &requestError{code: http.StatusNotImplemented, reason: "unsupported transfer encoding " + strings.Join(codings, ", ")}
		}
		h.chunked = true
		h.te = []string{"chunked"}
		delete(h.header, "Transfer-Encoding")
		return nil
	}
	if hasCL {
		var n int64 = -1
		for _, v := range cl {
			for part := range strings.SplitSeq(v, ",") {
				m, ok := parseLength(textproto.TrimString(part))
				if !ok {
					return badRequest("invalid Content-Length")
				}
				if n >= 0 && m != n {
					return badRequest("conflicting Content-Length values")
				}
				n = m
			}
		}
		h.length = n
		h.header["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	}
	return nil
}

// asciiEqualFold compares protocol tokens case-insensitively in ASCII only:
// Unicode folding would let "chun\u212Aed" (a Kelvin sign) pass for chunked,
// which a proxy in front would not agree with.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length: digits only, no sign, no overflow.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// hostChars are the bytes net/http accepts in a Host header.
var hostChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChars[h[i]] {
			return false
		}
	}
	return true
}

// requestURL parses the request target into a URL the way net/http does:
// origin-form and absolute-form with url.ParseRequestURI, authority-form
// for CONNECT, and "*" for OPTIONS. A plain origin-form target is parsed
// into dst, if not nil, without allocating.
func (h *head) requestURL(dst *url.URL) (*url.URL, *requestError) {
	if dst != nil && parseOriginForm(h.target, dst) {
		return dst, nil
	}
	if h.method == http.MethodConnect && !strings.HasPrefix(h.target, "/") {
		// Authority-form: parsed as the host of an absolute URL.
		u, err := url.ParseRequestURI("http://" + h.target)
		if err != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, badRequest("malformed CONNECT target")
		}
		u.Scheme = ""
		return u, nil
	}
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		return nil, badRequest("malformed request target")
	}
	return u, nil
}

// pathByteKept[c] is true when url.ParseRequestURI keeps byte c in a path
// as it is: no unescaping, and no RawPath because its escaping of the path
// would differ. It is asked of the url package itself, so the two cannot
// disagree.
var pathByteKept = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		p := "/" + string(rune(c))
		if u, err := url.ParseRequestURI(p); err == nil && u.Path == p && u.RawPath == "" && u.RawQuery == "" && !u.ForceQuery {
			t[c] = true
		}
	}
	return t
}()

// parseOriginForm fills u as url.ParseRequestURI would for an origin-form
// target ("/path?query") whose path has only bytes that need no escaping,
// and reports whether it did; other targets are left to the url package.
func parseOriginForm(target string, u *url.URL) bool {
	if len(target) == 0 || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !pathByteKept[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < ' ' || c == 0x7f {
			return false // url.ParseRequestURI refuses control bytes
		}
	}
	*u = url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" {
		// "/p?" sets ForceQuery; "/p??" is a query of "?".
		u.ForceQuery = true
	}
	return true
}
