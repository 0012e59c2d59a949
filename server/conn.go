package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/wsgiinput"
)

// maxPostHandlerRead is how much unread request body the server reads and
// drops after a handler, to keep the connection; beyond it, it closes.
const maxPostHandlerRead = 256 << 10

// lingerBeforeClose is how long a closing connection keeps reading (and
// dropping) input after its last response, so the client receives the
// response instead of a reset.
const lingerBeforeClose = 500 * time.Millisecond

// A phase is where a connection is in its cycle; it decides what its timer
// means.
type phase uint8

const (
	phaseHead   phase = iota // waiting for (the rest of) a request head
	phaseActive              // a handler runs or a response is being written
	phaseIdle                // between requests
	phaseClosed
)

// A conn is one client connection. All of its fields are touched only on
// its loop, by its callbacks and its serving task.
type conn struct {
	s    *Server
	ls   *loopState
	l    *fdpoll.Loop
	raw  *fdpoll.Conn
	tlsc *tls.Conn
	out  io.Writer // raw, or tlsc over it
	in   *wsgiinput.Input

	base   context.Context // from BaseContext; see the context methods below
	ctx    context.Context // parent of request contexts: c, or ConnContext's
	reqCtx context.Context // context of the request being served

	phase    phase
	running  bool // a task is serving the connection
	served   int
	hijacked bool
	timer    *fdpoll.Timer
	remote   string

	body     *wsgiinput.Body // of the request being served, if it has one
	busyBody *wsgiinput.Body // a closed body some goroutine still reads

	onReadable func()
	serveFn    func(context.Context) error
	timeoutFn  func() // made when a timeout is first armed
	watchFn    func() // made when a handler first waits
	watchGen   uint32 // counts handler starts and ends
	armFor     uint32 // the watchGen an armWatch is for

	prev, next *conn // in the loop's list
}

// newConn starts serving a connection just accepted on loop l.
func (s *Server) newConn(l *fdpoll.Loop, raw *fdpoll.Conn) {
	ls := s.loops[l.Index()]
	c := &conn{s: s, ls: ls, l: l, raw: raw, remote: raw.RemoteAddr().String(), base: ls.baseCtx}
	c.onReadable = c.readable
	c.serveFn = c.serve
	c.out = raw
	if s.tlsConfig != nil {
		c.tlsc = tls.Server(raw, s.tlsConfig)
		c.out = c.tlsc
	}
	c.in = wsgiinput.NewInput(c.out.(io.Reader), s.maxHeaderBytes()+4096)
	c.ctx = c
	if s.ConnContext != nil {
		c.ctx = s.ConnContext(c, raw)
	}
	ls.add(c)
	s.setState(c, http.StateNew)
	c.phase = phaseHead
	c.armTimer(s.headerTimeout())
	if c.tlsc != nil {
		c.startTask()
		return
	}
	raw.WhenReadable(c.onReadable)
}

// readable runs on the loop when an idle connection may have input.
func (c *conn) readable() {
	if c.phase == phaseClosed || c.running || c.hijacked {
		return
	}
	c.startTask()
}

func (c *conn) startTask() {
	c.running = true
	c.l.Spawn(c.ctx, c.serveFn)
}

// armTimer makes the connection's timer fire after d (none if d <= 0).
func (c *conn) armTimer(d time.Duration) {
	if d <= 0 {
		if c.timer != nil {
			c.timer.Stop()
		}
		return
	}
	if c.timer == nil {
		c.timeoutFn = c.timedOut
		c.timer = c.l.AfterFunc(d, c.timeoutFn)
		return
	}
	c.timer.Reset(d)
}

// timedOut closes a connection whose header, idle or write time ran out.
func (c *conn) timedOut() {
	if c.phase == phaseClosed || c.hijacked {
		return
	}
	c.close()
}

// errIdle means no complete request is buffered and the socket has nothing
// more for now: the task gives the connection back to its readability
// callback.
var errIdle = errors.New("idle")

// serve is the task of one request: it reads the next request head, runs
// the handler and completes the response. If another request is already
// buffered (pipelining) it starts the next task; otherwise the connection
// goes back to waiting without a task. Each request thus has a task, and a
// context, of its own, cancelled when its handler returns.
func (c *conn) serve(ctx context.Context) error {
	next := false
	defer func() { c.running = next }()
	if c.phase == phaseClosed || c.hijacked {
		return nil // closed (by Shutdown, a timeout) before the task ran
	}
	if c.tlsc != nil && c.served == 0 {
		if err := c.tlsc.HandshakeContext(ctx); err != nil {
			c.s.logf("server: TLS handshake error from %s: %v", c.remote, err)
			c.close()
			return nil
		}
	}
	h, err := c.readHead()
	switch {
	case err == errIdle:
		c.releaseInput()
		c.raw.WhenReadable(c.onReadable)
		return nil
	case err != nil:
		var re *requestError
		if errors.As(err, &re) {
			c.out.Write(errorResponse(re))
			c.closeAfterResponse()
		} else {
			c.close()
		}
		return nil
	}
	keep := c.serveRequest(ctx, h)
	c.ls.putHead(h)
	if !keep {
		c.closeAfterResponse()
		return nil
	}
	if c.hijacked {
		return nil
	}
	c.served++
	c.phase = phaseIdle
	c.s.setState(c, http.StateIdle)
	c.armTimer(c.s.idleTimeout())
	if c.s.shuttingDown() {
		c.closeAfterResponse()
		return nil
	}
	if len(c.in.Buffered()) > 0 || c.tlsc != nil {
		// A pipelined request is waiting (or TLS, whose buffered
		// plaintext no readability event announces): serve it next.
		next = true
		c.l.Spawn(c.ctx, c.serveFn)
		return nil
	}
	c.releaseInput()
	c.raw.WhenReadable(c.onReadable)
	return nil
}

// releaseInput gives the input buffer back to the pool, unless a body read
// may still be using it: then the buffer stays with this connection (and
// goes to the garbage collector with it), never to another one.
func (c *conn) releaseInput() {
	if c.busyBody != nil {
		if c.busyBody.Busy() {
			return
		}
		c.busyBody = nil
	}
	c.in.Release()
}

// readHead returns the next request head, reading what the socket has
// without waiting (a TLS connection waits, within its timer). It returns
// errIdle when more input is needed and none is there, io.EOF when the client
// closed between requests, or a *requestError.
func (c *conn) readHead() (*head, error) {
	for {
		buf := c.in.Buffered()
		start, end, lineEnd := findHead(buf)
		if max := c.s.maxHeaderBytes(); end-start > max || (end == 0 && len(buf)-start > max) {
			if lineEnd == 0 || lineEnd-start > max {
				return nil, &requestError{code: http.StatusRequestURITooLong, reason: "request line too long"}
			}
			return nil, &requestError{code: http.StatusRequestHeaderFieldsTooLarge, reason: "request header too large"}
		}
		if end > 0 {
			text := string(buf[start:end])
			c.in.Discard(end)
			h := c.ls.getHead()
			h.mem = new(reqMem)
			if err := parseHead(text, h); err != nil {
				c.ls.putHead(h)
				return nil, err
			}
			return h, nil
		}
		space := c.in.Space()
		if len(space) == 0 {
			return nil, &requestError{code: http.StatusRequestHeaderFieldsTooLarge, reason: "request header too large"}
		}
		var n int
		var err error
		if c.tlsc != nil {
			err = c.in.Fill()
		} else {
			n, err = c.raw.TryRead(space)
			c.in.Commit(n)
		}
		switch {
		case err == fdpoll.ErrWouldBlock:
			return nil, errIdle
		case err == io.EOF && len(c.in.Buffered()) == 0:
			return nil, io.EOF
		case err != nil:
			return nil, err
		}
		if c.phase == phaseIdle {
			// The first bytes of the next request: the header clock starts.
			c.phase = phaseHead
			c.armTimer(c.s.headerTimeout())
		}
	}
}

// serveRequest runs the handler for one request and completes the
// response. It reports whether the connection may serve another request.
func (c *conn) serveRequest(ctx context.Context, h *head) bool {
	var r http.Request
	if rerr := c.newRequest(h, &r); rerr != nil {
		c.out.Write(errorResponse(rerr))
		return false
	}
	c.phase = phaseActive
	c.s.setState(c, http.StateActive)
	c.armTimer(c.s.WriteTimeout)

	req := r.WithContext(ctx) // the one copy of the request on the heap
	c.reqCtx = ctx
	defer func() { c.reqCtx = nil }()

	mem := h.mem
	if mem == nil {
		mem = new(reqMem)
	}
	w := c.ls.getResponse()
	rw := &mem.w
	rw.r, rw.s = w, c.s
	*w = response{
		c:          c,
		req:        req,
		wantsClose: h.close,
		wants10KA:  h.minor == 0 && h.keepAlive,
		isHead:     req.Method == http.MethodHead,
		expect100:  h.expect100 && c.body != nil,
	}
	if !req.ProtoAtLeast(1, 1) && !h.keepAlive {
		w.closeAfter = true
	}
	if rt := c.s.ReadTimeout; rt > 0 {
		c.raw.SetReadDeadline(time.Now().Add(rt))
		w.setDeadline = true
	}
	if c.body != nil && w.expect100 {
		c.body.BeforeWait(rw.sendContinue)
	}
	c.watchGen++
	if c.body == nil && c.tlsc == nil {
		c.ls.watchLater(c) // runs only if the handler waits: see armWatch
	}
	if c.body != nil && c.s.MaxRequestBodyBytes > 0 && h.length > c.s.MaxRequestBodyBytes {
		w.closeAfter = true
		http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
	} else {
		c.runHandler(w, rw, req)
	}
	if w.hijacked {
		// The response stays with its writer, which says ErrHijacked.
		return false
	}
	// The handler returned: its writer is dead from now on. finish may
	// suspend (draining an unread body), and a goroutine the handler left
	// behind must not write, flush or hijack meanwhile.
	rw.done.Store(true)
	if c.body != nil && !w.wroteHeader {
		var tooBig *http.MaxBytesError
		if errors.As(c.body.Err(), &tooBig) {
			w.closeAfter = true
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
		}
	}
	c.watchGen++ // disarm the disconnect watch
	w.finish()
	// Deadlines set for this request, by ReadTimeout or by the handler
	// through http.ResponseController, end with it.
	if w.setDeadline || c.tlsc != nil {
		c.raw.SetDeadline(time.Time{})
	}
	keep := !w.closeAfter && w.err == nil
	// The handler returned: its response and header map are dead.
	c.releaseHeader(w.handlerHeader)
	c.ls.putResponse(w)
	if c.body != nil {
		// A body that is not fully read, or that a leftover goroutine of
		// the handler still reads, leaves no reliable next message.
		if c.body.Busy() || !c.body.Done() {
			keep = false
		}
		c.body.Close()
		if c.body.Busy() {
			c.busyBody = c.body
		}
		c.body = nil
	}
	return keep
}

// armWatch starts watching for the client going away while a handler
// waits. It runs from a function posted when the handler starts, so only if
// the handler yields: a handler that finishes at once costs no syscall.
// Only requests without a body are watched, so the watch never races a body
// read.
func (c *conn) armWatch() {
	if c.watching() {
		if c.watchFn == nil {
			c.watchFn = c.watch
		}
		c.raw.WhenReadable(c.watchFn)
	}
}

// watching reports whether the handler a watch was armed for still runs.
func (c *conn) watching() bool {
	return c.phase == phaseActive && !c.hijacked && c.armFor == c.watchGen
}

// watch reads ahead while a handler waits: end of stream or an error means
// the client is gone and cancels the request's context; data (a pipelined
// request) is kept for later, and watching stops.
func (c *conn) watch() {
	if !c.watching() {
		return
	}
	space := c.in.Space()
	if len(space) == 0 {
		return
	}
	n, err := c.raw.TryRead(space)
	switch {
	case err == fdpoll.ErrWouldBlock:
		c.raw.WhenReadable(c.watchFn)
	case err != nil:
		c.in.SetErr(err)
		if c.reqCtx != nil {
			fdpoll.CancelTask(c.reqCtx) // the client is gone
		}
	default:
		c.in.Commit(n)
	}
}

// drainBody reads what remains of the request body before the response
// head goes out, as net/http does, so the connection can be kept. It
// decides to close instead when too much remains or the body is broken.
func (c *conn) drainBody(w *response) {
	b := c.body
	if b == nil || b.Done() {
		return
	}
	if b.Busy() || b.Remaining() > maxPostHandlerRead {
		w.closeAfter = true
		return
	}
	done, err := b.Discard(maxPostHandlerRead)
	if !done || err != nil {
		w.closeAfter = true
	}
}

// runHandler calls the handler. A panic is logged (unless it is
// http.ErrAbortHandler) and closes the connection; a handler that had not
// set a status yet gets a 500, one that had gets its response cut short.
func (c *conn) runHandler(w *response, rw *writer, req *http.Request) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p != http.ErrAbortHandler {
			c.s.logf("server: panic serving %s: %v\n%s", c.remote, p, debug.Stack())
		}
		w.closeAfter = true
		switch {
		case w.hijacked:
		case w.wroteHeader || p == http.ErrAbortHandler:
			w.aborted = true
		default:
			w.handlerHeader = nil
			http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		}
	}()
	if req.RequestURI == "*" && req.Method == http.MethodOptions && !c.s.DisableGeneralOptionsHandler {
		w.Header().Set("Content-Length", "0")
		return
	}
	c.s.handler().ServeHTTP(rw, req)
}

// closeAfterResponse shuts the sending side once the response is flushed,
// keeps reading (and dropping) for a moment so the client is not reset
// before it reads the response, then closes.
func (c *conn) closeAfterResponse() {
	if c.phase == phaseClosed || c.hijacked {
		return
	}
	if c.tlsc != nil {
		c.tlsc.CloseWrite()
	}
	c.raw.CloseWrite()
	c.phase = phaseClosed
	c.ls.remove(c)
	c.s.setState(c, http.StateClosed)
	c.releaseInput()
	deadline := c.l.AfterFunc(lingerBeforeClose, func() { c.raw.Close() })
	if c.timer != nil {
		c.timer.Stop()
	}
	var drop func()
	var scratch [512]byte
	drop = func() {
		for {
			_, err := c.raw.TryRead(scratch[:])
			if err == fdpoll.ErrWouldBlock {
				c.raw.WhenReadable(drop)
				return
			}
			if err != nil {
				deadline.Stop()
				c.raw.Close()
				return
			}
		}
	}
	c.raw.WhenReadable(drop)
}

// close closes the connection at once.
func (c *conn) close() {
	if c.phase == phaseClosed {
		return
	}
	c.phase = phaseClosed
	if c.timer != nil {
		c.timer.Stop()
	}
	c.ls.remove(c)
	if c.reqCtx != nil {
		fdpoll.CancelTask(c.reqCtx)
	}
	c.raw.Close()
	c.releaseInput()
	c.s.setState(c, http.StateClosed)
}

// hijack gives the connection away and returns it with the input the
// server had already read. Its bookkeeping belongs to the loop: called from
// another goroutine, it is done there while the caller waits.
func (c *conn) hijack() (net.Conn, []byte) {
	if !c.l.Current() {
		var buffered []byte
		fdpoll.Await(context.Background(), fdpoll.Call(c.l, context.Background(), func(context.Context) (struct{}, error) {
			_, buffered = c.hijack()
			return struct{}{}, nil
		}))
		if c.tlsc != nil {
			return c.tlsc, buffered
		}
		return c.raw, buffered
	}
	c.hijacked = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.raw.SetDeadline(time.Time{})
	c.ls.remove(c)
	c.s.setState(c, http.StateHijacked)
	buffered := append([]byte(nil), c.in.Buffered()...)
	c.in.Discard(len(buffered))
	if c.body != nil {
		// Its bytes, if any were buffered, now belong to the hijacker.
		c.body.Close()
		c.busyBody = c.body
	}
	c.releaseInput()
	if c.tlsc != nil {
		return c.tlsc, buffered
	}
	return c.raw, buffered
}

// scratch returns an empty buffer for building output; releaseScratch
// recycles it. The pool is the loop's: a handler that writes from another
// goroutine (inside fdpoll.Go, say) gets fresh buffers.
func (c *conn) scratch() []byte {
	if ls := c.ls; c.l.Current() {
		if n := len(ls.scratch); n > 0 {
			b := ls.scratch[n-1]
			ls.scratch = ls.scratch[:n-1]
			return b
		}
	}
	return make([]byte, 0, 512)
}

// header returns an empty header map for a response, from the loop's pool
// when called on the loop; releaseHeader clears and recycles it.
func (c *conn) header() http.Header {
	if ls := c.ls; c.l.Current() {
		if n := len(ls.headers); n > 0 {
			h := ls.headers[n-1]
			ls.headers[n-1] = nil
			ls.headers = ls.headers[:n-1]
			return h
		}
	}
	return make(http.Header)
}

// maxPooledHeader is the most fields a recycled header map may have had:
// a map that grew bigger is left to the garbage collector, so the pool
// holds small maps only.
const maxPooledHeader = 8

func (c *conn) releaseHeader(h http.Header) {
	if h == nil || len(h) > maxPooledHeader || !c.l.Current() || len(c.ls.headers) >= 64 {
		return
	}
	clear(h)
	c.ls.headers = append(c.ls.headers, h)
}

func (c *conn) releaseScratch(b []byte) {
	if b != nil && cap(b) <= 64<<10 && c.l.Current() && len(c.ls.scratch) < 1024 {
		c.ls.scratch = append(c.ls.scratch, b[:0])
	}
}

// A connection is the parent context of its requests: the server's base
// context, plus the local address under http.LocalAddrContextKey. Being its
// own context saves every idle connection a context of its own.

func (c *conn) Deadline() (time.Time, bool) { return c.base.Deadline() }
func (c *conn) Done() <-chan struct{}       { return c.base.Done() }
func (c *conn) Err() error                  { return c.base.Err() }

func (c *conn) Value(key any) any {
	if key == http.LocalAddrContextKey {
		return c.raw.LocalAddr()
	}
	return c.base.Value(key)
}
