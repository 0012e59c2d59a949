package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/yieldio/yieldio/wsgiinput"
)

// holdBack is how much body a response keeps before deciding its framing:
// a handler whose whole output fits gets a Content-Length, a longer one is
// sent chunked. It is net/http's figure, so responses frame the same.
const holdBack = 2048

// A response is the state of one request's response, behind the writer its
// handler gets. It writes into the connection's output buffer, which the
// loop flushes at the end of its iteration; a handler writing faster than
// the client reads is suspended by the connection's high-water mark, so
// memory stays bounded. Responses belong to the loop: once the handler
// returned and the response is complete, it serves a later request.
type response struct {
	c   *conn
	req *http.Request

	handlerHeader http.Header // what Header returns; from the loop's pool

	// Frozen at WriteHeader: the handler's fields except the special ones
	// (serialized), and those (parsed).
	status        int
	fields        []byte
	contentLength int64 // declared, -1 if not
	te            string
	connection    string
	contentType   []string
	date          string
	has           uint8 // which of Content-Length, Transfer-Encoding and Connection the header has

	written  int64
	buf      []byte   // body held back before the head is sent
	trailers []string // declared trailer keys
	err      error    // the connection failed

	// The flags, together so that they pack.
	wroteHeader  bool
	haveType     bool
	headSent     bool
	chunking     bool
	handlerDone  bool
	closeAfter   bool
	wantsClose   bool // the request asked to close
	wants10KA    bool // an HTTP/1.0 request asked for keep-alive
	isHead       bool
	hijacked     bool
	aborted      bool // the handler panicked after its status was set
	fullDuplex   bool // reading the body after the head is sent
	expect100    bool // the client waits for 100 Continue
	sentContinue bool // a 100 Continue went out
	setDeadline  bool // the connection has a deadline for this request
}

// Header returns the response's header map. The map is the loop's: once
// the handler returns it is cleared and handed to a later response, as
// net/http's contract allows (a ResponseWriter may not be used after
// ServeHTTP returns). A handler must not keep it past its return, nor
// change it from a goroutine it leaves behind.
func (w *response) Header() http.Header {
	if w.handlerHeader == nil {
		w.handlerHeader = w.c.header()
	}
	return w.handlerHeader
}

// WriteHeader sends (lazily) the status. 1xx codes other than 101 are sent
// at once with the current header and do not count as the response.
func (w *response) WriteHeader(code int) {
	if w.hijacked {
		w.c.s.logf("server: WriteHeader on hijacked connection")
		return
	}
	if w.wroteHeader {
		w.c.s.logf("server: superfluous WriteHeader call with %d", code)
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		if code == http.StatusContinue {
			// Sent on request, with the current header, and never again
			// automatically.
			w.sentContinue = true
		}
		b := w.c.scratch()
		b = appendStatusLine(b, w.req.ProtoAtLeast(1, 1), code)
		b = appendHeader(b, w.handlerHeader, func(k string) bool { return k == hContentLength || k == hTransferEncoding })
		b = append(b, "\r\n"...)
		w.write(b)
		w.c.releaseScratch(b)
		w.c.raw.Flush()
		return
	}
	w.wroteHeader = true // from now on no 100 Continue (see sendContinue)
	w.status = code
	h := w.handlerHeader
	w.contentLength = -1
	// The fields the server handles itself are looked up, not searched
	// for: a header with nothing else (the common case) is not iterated.
	specials := 0
	if v, ok := h[hContentLength]; ok {
		specials++
		w.has |= fieldCL
		if cl := first(v); cl != "" {
			if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
				w.contentLength = n
			} else {
				w.c.s.logf("server: invalid Content-Length of %q", cl)
				delete(h, hContentLength)
				specials--
				w.has &^= fieldCL
			}
		}
	}
	if v, ok := h[hTransferEncoding]; ok {
		specials++
		w.has |= fieldTE
		w.te = first(v)
	}
	if v, ok := h[hConnection]; ok {
		specials++
		w.has |= fieldConnection
		w.connection = first(v)
	}
	if v, ok := h[hContentType]; ok {
		specials++
		w.contentType, w.haveType = v, true
	}
	if d, ok := h[hDate]; ok {
		specials++
		w.date = "\x00" // present: keep the handler's
		if len(d) > 0 {
			w.date = d[0]
		}
	}
	for _, v := range h[hTrailer] {
		for k := range strings.SplitSeq(v, ",") {
			if k = textproto.TrimString(k); k != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	if len(h) > specials {
		w.fields = appendHeader(w.c.scratch(), h, special)
	}
}

// first returns the first of vs, or "" (http.Header.Get for a key that is
// already canonical).
func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// Bits of response.has.
const (
	fieldCL uint8 = 1 << iota
	fieldTE
	fieldConnection
)

// errAfterReturn is what a ResponseWriter says once its handler returned:
// a goroutine the handler left behind must not write into the connection,
// which by then carries another response.
var errAfterReturn = errors.New("server: ResponseWriter used after the handler returned")

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.headSent {
		if len(w.buf)+len(p) <= holdBack {
			if w.buf == nil {
				w.buf = w.c.scratch()
			}
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.sendHead(w.sniffable(p))
		if len(w.buf) > 0 {
			w.writeBody(w.buf)
			w.c.releaseScratch(w.buf)
			w.buf = nil
		}
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// WriteString lets io.WriteString skip a conversion: the bytes are only
// read (copied into the output), never kept or changed.
func (w *response) WriteString(s string) (int, error) {
	return w.Write(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// sniffable returns the first body bytes, held back and new, for
// Content-Type detection.
func (w *response) sniffable(p []byte) []byte {
	if len(w.buf) == 0 {
		return p
	}
	n := min(len(p), 512)
	return append(w.buf[:len(w.buf):len(w.buf)], p[:n]...)
}

// Flush sends the head (chunked, since the length is not known yet) and
// whatever was written, now.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush that reports a failed connection (http.ResponseController).
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(w.buf)
		if len(w.buf) > 0 {
			w.writeBody(w.buf)
		}
		w.c.releaseScratch(w.buf)
		w.buf = nil
	}
	if w.err == nil {
		if err := w.c.raw.Flush(); err != nil {
			w.err = err
		}
	}
	return w.err
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
// The deadlines end with the request (see conn.serveRequest).
func (w *response) SetReadDeadline(t time.Time) error {
	w.setDeadline = true
	return w.c.raw.SetReadDeadline(t)
}

func (w *response) SetWriteDeadline(t time.Time) error {
	w.setDeadline = true
	return w.c.raw.SetWriteDeadline(t)
}

// EnableFullDuplex serves http.ResponseController: the handler will read
// the body while writing the response, so the server does not drain the
// body before sending the head.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// Hijack hands the connection to the handler (websockets, CONNECT). A
// status and body already written are sent first, so the common
// WriteHeader(101)-then-Hijack works; the returned reader holds any input
// the server had already read. It may be called from another goroutine
// (one in fdpoll.Go, say), as long as the handler has not returned.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader && !w.headSent {
		w.sendHead(w.buf)
		w.writeBody(w.buf)
		w.c.releaseScratch(w.buf)
		w.buf = nil
	}
	w.hijacked = true
	nc, buffered := w.c.hijack()
	r := bufio.NewReader(io.MultiReader(bytes.NewReader(buffered), nc))
	return nc, bufio.NewReadWriter(r, bufio.NewWriter(nc)), nil
}

// sendContinue answers Expect: 100-continue, once, if the response has not
// started: the client then sends the body the handler wants to read.
func (w *response) sendContinue() {
	if !w.expect100 || w.sentContinue || w.wroteHeader {
		return
	}
	w.sentContinue = true
	w.write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	w.c.raw.Flush()
}

// sendHead decides the framing and connection handling as net/http does and
// writes the status line and header. p is the first of the body, for
// Content-Type sniffing and, once the handler is done, its length.
func (w *response) sendHead(p []byte) {
	b := w.appendHead(w.c.scratch(), p)
	w.write(b)
	w.c.releaseScratch(b)
}

// appendHead is sendHead that appends the head to b instead of writing it.
func (w *response) appendHead(b, p []byte) []byte {
	w.headSent = true
	code := w.status
	bodyOK := bodyAllowedForStatus(code)
	keepAlives := w.c.s.keepAlivesEnabled()
	hasTE := w.te != ""
	hasCL := w.has&fieldCL != 0 && w.contentLength != -1

	var setCL = -1
	if w.handlerDone && len(w.trailers) == 0 && !hasTE && bodyOK && !hasCL && (!w.isHead || len(p) > 0) {
		w.contentLength = int64(len(p))
		setCL = len(p)
		hasCL = true
	}
	if w.wants10KA && keepAlives && hasCL && asciiEqualFold(w.connection, "keep-alive") {
		w.closeAfter = false
	}
	var setConnection string
	if w.wants10KA && (w.isHead || hasCL || !bodyOK) {
		if w.connection == "" {
			setConnection = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfter = true
	}
	if asciiEqualFold(w.connection, "close") || !keepAlives {
		w.closeAfter = true
	}
	if w.expect100 && !w.sentContinue {
		// The client still holds the body back: it cannot be drained.
		w.closeAfter = true
	}
	if !w.closeAfter && !w.fullDuplex {
		w.c.drainBody(w) // may decide to close
	}

	var setType string
	dropCL, dropTE, dropType := false, false, false
	if bodyOK {
		if !w.haveType && !hasTE && len(p) > 0 && w.handlerHeader.Get("Content-Encoding") == "" {
			setType = http.DetectContentType(p)
		}
	} else {
		dropCL, dropTE = true, true
		if code == http.StatusNotModified {
			dropType = true
		}
	}
	if hasCL && hasTE && !asciiEqualFold(w.te, "identity") {
		w.c.s.logf("server: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", w.te, w.contentLength)
		dropCL, hasCL = true, false
	}
	var setTE string
	switch {
	case w.isHead || !bodyOK || code == http.StatusNoContent:
		dropTE = true
	case hasCL:
		dropTE = true
	case w.req.ProtoAtLeast(1, 1):
		if hasTE && asciiEqualFold(w.te, "identity") {
			w.closeAfter = true
			dropTE = true
		} else {
			w.chunking = true
			setTE = "chunked"
			dropTE = true
		}
	default:
		w.closeAfter = true
		dropTE = true
	}
	if w.chunking {
		dropCL = true
	}
	dropConnection := false
	if w.closeAfter && (!keepAlives || !hasToken(w.connection, "close")) && !isProtocolSwitch(code, w.connection) {
		dropConnection = true
		if w.req.ProtoAtLeast(1, 1) {
			setConnection = "close"
		}
	}

	b = appendStatusLine(b, w.req.ProtoAtLeast(1, 1), code)
	b = append(b, w.fields...)
	w.c.releaseScratch(w.fields)
	w.fields = nil
	h := w.handlerHeader
	if !dropCL && setCL < 0 && w.has&fieldCL != 0 {
		b = appendFieldValues(b, hContentLength, h[hContentLength])
	}
	if !dropTE && w.has&fieldTE != 0 {
		b = appendFieldValues(b, hTransferEncoding, h[hTransferEncoding])
	}
	if !dropConnection && w.has&fieldConnection != 0 {
		b = appendFieldValues(b, hConnection, h[hConnection])
	}
	if !dropType {
		b = appendFieldValues(b, hContentType, w.contentType)
	}
	if w.date != "" {
		if w.date != "\x00" {
			b = appendFieldValues(b, hDate, []string{w.date})
		}
	} else {
		b = append(b, "Date: "...)
		if c := w.c; c.l.Current() {
			b = append(b, c.ls.date.get(c.l)...)
		} else {
			b = append(b, c.s.date.get()...)
		}
		b = append(b, "\r\n"...)
	}
	if setCL >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(setCL), 10)
		b = append(b, "\r\n"...)
	}
	for i, v := range [...]string{setType, setConnection, setTE} {
		if v != "" {
			b = append(b, [...]string{"Content-Type: ", "Connection: ", "Transfer-Encoding: "}[i]...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

func appendFieldValues(b []byte, key string, vs []string) []byte {
	for _, v := range vs {
		b = append(b, key...)
		b = append(b, ": "...)
		b = appendValue(b, textproto.TrimString(v))
		b = append(b, "\r\n"...)
	}
	return b
}

func appendStatusLine(b []byte, is11 bool, code int) []byte {
	if is11 {
		if code == http.StatusOK {
			return append(b, "HTTP/1.1 200 OK\r\n"...)
		}
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

func isProtocolSwitch(code int, connection string) bool {
	return code == http.StatusSwitchingProtocols && hasToken(connection, "upgrade")
}

// writeBody sends body bytes with the chosen framing.
func (w *response) writeBody(p []byte) {
	if w.isHead || len(p) == 0 {
		return
	}
	if w.chunking {
		var hdr [18]byte
		b := strconv.AppendInt(hdr[:0], int64(len(p)), 16)
		b = append(b, "\r\n"...)
		w.write(b)
		w.write(p)
		w.write([]byte("\r\n"))
		return
	}
	w.write(p)
}

// appendBody is writeBody that appends to b.
func (w *response) appendBody(b, p []byte) []byte {
	if w.isHead || len(p) == 0 {
		return b
	}
	if w.chunking {
		b = strconv.AppendInt(b, int64(len(p)), 16)
		b = append(b, "\r\n"...)
		b = append(b, p...)
		return append(b, "\r\n"...)
	}
	return append(b, p...)
}

// write puts b into the connection's output, remembering a failure.
func (w *response) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.c.out.Write(b); err != nil {
		w.err = err
		w.closeAfter = true
	}
}

// finish completes the response after the handler returned. An aborted
// response (the handler panicked after setting its status) is not
// completed: what was sent stays truncated, without a last chunk or a
// computed length, so the client sees the failure.
func (w *response) finish() {
	w.handlerDone = true
	if w.hijacked {
		return
	}
	if w.aborted {
		w.closeAfter = true
		w.c.releaseScratch(w.buf)
		w.buf = nil
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	// What is left goes out in one piece: head, held-back body, last chunk.
	var b []byte
	if !w.headSent {
		b = w.appendHead(w.c.scratch(), w.buf)
		b = w.appendBody(b, w.buf)
	}
	w.c.releaseScratch(w.buf)
	w.buf = nil
	if w.chunking {
		if b == nil {
			b = w.c.scratch()
		}
		b = append(b, "0\r\n"...)
		b = w.appendTrailers(b)
		b = append(b, "\r\n"...)
	}
	if b != nil {
		w.write(b)
		w.c.releaseScratch(b)
	}
	if w.contentLength != -1 && w.written != w.contentLength && bodyAllowedForStatus(w.status) && !w.isHead {
		// The declared length was not honoured: the framing is broken.
		w.closeAfter = true
	}
	if w.status == http.StatusSwitchingProtocols {
		// Switched but not hijacked: nothing HTTP follows.
		w.closeAfter = true
	}
}

// appendTrailers appends the trailer fields: those declared in Trailer and
// those set with the http.TrailerPrefix.
func (w *response) appendTrailers(b []byte) []byte {
	h := w.handlerHeader
	for _, k := range w.trailers {
		if k == hContentLength || k == hTransferEncoding || k == hTrailer {
			continue
		}
		b = appendFieldValues(b, k, h[k])
	}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && wsgiinput.IsToken(name) {
			b = appendFieldValues(b, http.CanonicalHeaderKey(name), vs)
		}
	}
	return b
}

// A writer is the http.ResponseWriter a handler gets, in front of a
// response. The response serves later requests once the handler returned,
// so each method first checks that the handler still runs: a goroutine it
// left behind must not reach the connection, which by then carries another
// response.
type writer struct {
	r    *response
	s    *Server
	done atomic.Bool // the handler returned: the writer is dead
}

// Header returns the response's header map; after the handler returned, a
// map of its own that reaches no response.
func (w *writer) Header() http.Header {
	if w.done.Load() {
		return make(http.Header)
	}
	return w.r.Header()
}

func (w *writer) WriteHeader(code int) {
	if w.done.Load() {
		w.s.logf("server: WriteHeader(%d) after the handler returned", code)
		return
	}
	w.r.WriteHeader(code)
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done.Load() {
		return 0, errAfterReturn
	}
	return w.r.Write(p)
}

// WriteString lets io.WriteString skip a conversion.
func (w *writer) WriteString(s string) (int, error) {
	if w.done.Load() {
		return 0, errAfterReturn
	}
	return w.r.WriteString(s)
}

// Flush sends the head and what was written so far (see response.Flush).
func (w *writer) Flush() { w.FlushError() }

// FlushError is Flush that reports a failed connection (http.ResponseController).
func (w *writer) FlushError() error {
	if w.done.Load() {
		return errAfterReturn
	}
	return w.r.FlushError()
}

// SetReadDeadline serves http.ResponseController; the deadline ends with
// the request.
func (w *writer) SetReadDeadline(t time.Time) error {
	if w.done.Load() {
		return errAfterReturn
	}
	return w.r.SetReadDeadline(t)
}

// SetWriteDeadline serves http.ResponseController; the deadline ends with
// the request.
func (w *writer) SetWriteDeadline(t time.Time) error {
	if w.done.Load() {
		return errAfterReturn
	}
	return w.r.SetWriteDeadline(t)
}

// EnableFullDuplex serves http.ResponseController (see
// response.EnableFullDuplex).
func (w *writer) EnableFullDuplex() error {
	if w.done.Load() {
		return errAfterReturn
	}
	return w.r.EnableFullDuplex()
}

// Hijack hands the connection to the handler (see response.Hijack).
func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.done.Load() {
		return nil, nil, errAfterReturn
	}
	return w.r.Hijack()
}

// sendContinue answers Expect: 100-continue while the handler runs.
func (w *writer) sendContinue() {
	if !w.done.Load() {
		w.r.sendContinue()
	}
}
