package server

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/yieldio/yieldio/wsgiinput"
)

// The headers the server decides itself, which a snapshot of the handler's
// header leaves out and handles separately.
const (
	hContentLength    = "Content-Length"
	hTransferEncoding = "Transfer-Encoding"
	hConnection       = "Connection"
	hContentType      = "Content-Type"
	hDate             = "Date"
	hTrailer          = "Trailer"
)

func special(k string) bool {
	switch k {
	case hContentLength, hTransferEncoding, hConnection, hContentType, hDate:
		return true
	}
	return false
}

// appendHeader appends h's fields to dst as "Key: value\r\n" lines, keys
// sorted as net/http writes them, skipping the keys skip selects, fields
// with invalid names, and trailer declarations by prefix. Line breaks in
// values become spaces, so a handler cannot split the response.
func appendHeader(dst []byte, h http.Header, skip func(string) bool) []byte {
	var small [24]string
	keys := small[:0]
	for k := range h {
		if skip(k) || strings.HasPrefix(k, http.TrailerPrefix) || !wsgiinput.IsToken(k) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = appendValue(dst, textproto.TrimString(v))
			dst = append(dst, "\r\n"...)
		}
	}
	return dst
}

func appendValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			dst = append(dst, ' ')
		} else {
			dst = append(dst, c)
		}
	}
	return dst
}

// hasToken reports whether the comma-separated list v contains tok,
// case-insensitively in ASCII.
func hasToken(v, tok string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if asciiEqualFold(textproto.TrimString(part), tok) {
			return true
		}
	}
	return false
}
