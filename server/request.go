package server

import (
	"net/http"
	"net/url"

	"github.com/yieldio/yieldio/wsgiinput"
)

// newRequest fills req for a parsed head, with a streamed body when it has
// one.
func (c *conn) newRequest(h *head, req *http.Request) *requestError {
	var dst *url.URL
	if h.mem != nil {
		dst = &h.mem.url
	}
	u, err := h.requestURL(dst)
	if err != nil {
		return err
	}
	host := h.host
	if u.Host != "" {
		host = u.Host // absolute-form wins over the Host header
	}
	*req = http.Request{
		Method:     h.method,
		URL:        u,
		Proto:      h.proto,
		ProtoMajor: h.major,
		ProtoMinor: h.minor,
		Header:     h.header,
		Host:       host,
		RemoteAddr: c.remote,
		RequestURI: h.target,
		Close:      h.close || (h.minor == 0 && !h.keepAlive),
		Body:       http.NoBody,
	}
	if c.tlsc != nil {
		st := c.tlsc.ConnectionState()
		req.TLS = &st
	}
	var dec wsgiinput.Decoder
	switch {
	case h.chunked:
		req.ContentLength = -1
		req.TransferEncoding = h.te
		dec = wsgiinput.NewChunked()
	case h.length > 0:
		req.ContentLength = h.length
		dec = wsgiinput.ContentLength(h.length)
	}
	if dec != nil {
		b := wsgiinput.NewBody(c.in, dec, c.l)
		if c.s.MaxRequestBodyBytes > 0 {
			b.SetLimit(c.s.MaxRequestBodyBytes)
		}
		if len(h.trailerKey) > 0 && h.chunked {
			req.Trailer = make(http.Header, len(h.trailerKey))
			for _, k := range h.trailerKey {
				req.Trailer[k] = nil
			}
			b.FillTrailer(req.Trailer)
		}
		c.body = b
		req.Body = b
	}
	return nil
}
