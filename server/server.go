package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"golang.org/x/sys/unix"
)

// A Server serves HTTP/1.1 on a group of event loops, running each request's
// http.Handler as a task: a handler that awaits a future (a database reply,
// the next piece of its request body) suspends while its loop serves other
// connections. Its fields mirror http.Server's; set them before serving and
// do not change them after.
//
// Handlers must not block their loop: code that waits should wait through
// yieldio (fdpoll.Await, a Body's Read, a pgasync or dnsasync future), and
// code that can only block (a file read, a mutex held long) belongs in
// fdpoll.Go. Such a handler runs unchanged on net/http.
type Server struct {
	// Addr is the TCP address to listen on, ":http" if empty.
	Addr string

	// Handler serves requests; nil means http.DefaultServeMux.
	Handler http.Handler

	// Group runs the server's loops; nil means fdpoll.Default(). The server
	// never closes it.
	Group *fdpoll.Group

	// TLSConfig, if not nil, makes the server speak TLS (see also
	// ListenAndServeTLS). Only HTTP/1.1 is offered over ALPN.
	TLSConfig *tls.Config

	// ReadTimeout bounds reading a whole request, body included, and is
	// the default of ReadHeaderTimeout and IdleTimeout. Zero means none.
	ReadTimeout time.Duration

	// ReadHeaderTimeout bounds reading a request head, from its first byte
	// (or from the accept, for a new connection).
	ReadHeaderTimeout time.Duration

	// WriteTimeout bounds handling a request and writing its response, from
	// the end of its head; the connection is closed when it passes.
	WriteTimeout time.Duration

	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection.
	IdleTimeout time.Duration

	// MaxHeaderBytes bounds a request head (request line and fields, line
	// endings included); zero means http.DefaultMaxHeaderBytes. A longer
	// request line gets 414, a longer head 431.
	MaxHeaderBytes int

	// MaxRequestBodyBytes, if positive, bounds request bodies: a larger
	// declared length gets 413 without calling the handler, and a chunked
	// body that grows past it fails its reads with *http.MaxBytesError (and
	// gets 413 if the handler has not responded).
	MaxRequestBodyBytes int64

	// ConnState is called on the connection's loop when it changes state.
	// It must not block.
	ConnState func(net.Conn, http.ConnState)

	// ErrorLog receives connection errors and handler panics; nil means
	// the log package's standard logger.
	ErrorLog *log.Logger

	// BaseContext returns the base context of requests on a listener;
	// nil means context.Background().
	BaseContext func(net.Listener) context.Context

	// ConnContext may derive the context of a new connection's requests.
	ConnContext func(ctx context.Context, c net.Conn) context.Context

	// DisableGeneralOptionsHandler, if true, passes "OPTIONS *" requests to
	// the Handler; otherwise they are answered 200 with an empty body, as
	// net/http does.
	DisableGeneralOptionsHandler bool

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	onShutdown []func()
	done       chan struct{} // closed at Shutdown or Close
	doneOnce   sync.Once
	inShutdown atomic.Bool
	noKeep     atomic.Bool
	nconns     atomic.Int64
	tlsConfig  *tls.Config
	loops      []*loopState
	addrs      []net.Addr
	group      *fdpoll.Group
	date       dateCache
	started    bool
}

// ErrServerClosed is returned by the Serve methods after Shutdown or Close.
// It is net/http's value, so existing checks keep working.
var ErrServerClosed = http.ErrServerClosed

// A loopState is the server's state on one loop, touched only there.
type loopState struct {
	l       *fdpoll.Loop
	conns   *conn // list of open connections
	scratch [][]byte
	headers []http.Header // cleared response header maps
	// Responses whose handler returned, for later requests.
	responses []*response
	date      loopDate
	heads     []*head
	baseCtx   context.Context

	// Connections whose handler just started: watched for disconnects if
	// the handler waits (see conn.armWatch).
	toWatch []*conn
	watchFn func()
}

func (ls *loopState) getHead() *head {
	if n := len(ls.heads); n > 0 {
		h := ls.heads[n-1]
		ls.heads = ls.heads[:n-1]
		return h
	}
	return new(head)
}

func (ls *loopState) getResponse() *response {
	if n := len(ls.responses); n > 0 {
		w := ls.responses[n-1]
		ls.responses[n-1] = nil
		ls.responses = ls.responses[:n-1]
		return w
	}
	return new(response)
}

// putResponse recycles w, once its handler returned and it is complete.
func (ls *loopState) putResponse(w *response) {
	*w = response{}
	if len(ls.responses) < 256 {
		ls.responses = append(ls.responses, w)
	}
}

// putHead recycles h, dropping what it refers to: an idle connection keeps
// nothing of its last request.
func (ls *loopState) putHead(h *head) {
	*h = head{}
	if len(ls.heads) < 256 {
		ls.heads = append(ls.heads, h)
	}
}

// watchLater queues c's disconnect watch behind whatever runs now: if the
// handler finishes without waiting, the watch is stale by then and costs
// nothing.
func (ls *loopState) watchLater(c *conn) {
	c.armFor = c.watchGen
	ls.toWatch = append(ls.toWatch, c)
	if len(ls.toWatch) == 1 {
		if ls.watchFn == nil {
			ls.watchFn = ls.armWatches
		}
		ls.l.Post(ls.watchFn)
	}
}

func (ls *loopState) armWatches() {
	for i, c := range ls.toWatch {
		ls.toWatch[i] = nil
		c.armWatch()
	}
	ls.toWatch = ls.toWatch[:0]
}

func (ls *loopState) add(c *conn) {
	c.next = ls.conns
	if ls.conns != nil {
		ls.conns.prev = c
	}
	ls.conns = c
}

func (ls *loopState) remove(c *conn) {
	if c.prev == nil && ls.conns != c {
		return // not in the list
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		ls.conns = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// ListenAndServe listens on addr and serves h with a new Server.
func ListenAndServe(addr string, h http.Handler) error {
	s := &Server{Addr: addr, Handler: h}
	return s.ListenAndServe()
}

// ListenAndServeTLS listens on addr and serves h over TLS with a new
// Server.
func ListenAndServeTLS(addr, certFile, keyFile string, h http.Handler) error {
	s := &Server{Addr: addr, Handler: h}
	return s.ListenAndServeTLS(certFile, keyFile)
}

func (s *Server) handler() http.Handler {
	if s.Handler != nil {
		return s.Handler
	}
	return http.DefaultServeMux
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) headerTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return s.ReadTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return s.ReadTimeout
}

func (s *Server) shuttingDown() bool { return s.inShutdown.Load() }

func (s *Server) keepAlivesEnabled() bool { return !s.noKeep.Load() && !s.shuttingDown() }

// SetKeepAlivesEnabled controls HTTP keep-alives; they are on by default.
func (s *Server) SetKeepAlivesEnabled(v bool) { s.noKeep.Store(!v) }

// RegisterOnShutdown registers fn to be called, in its own goroutine, at
// Shutdown.
func (s *Server) RegisterOnShutdown(fn func()) {
	s.mu.Lock()
	s.onShutdown = append(s.onShutdown, fn)
	s.mu.Unlock()
}

func (s *Server) setState(c *conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.nconns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.nconns.Add(-1)
	}
	if s.ConnState != nil {
		s.ConnState(c.raw, st)
	}
}

// init prepares the server's per-loop state once.
func (s *Server) init() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown() {
		return ErrServerClosed
	}
	if s.started {
		return nil
	}
	s.started = true
	s.done = make(chan struct{})
	s.listeners = map[net.Listener]struct{}{}
	s.group = s.Group
	if s.group == nil {
		s.group = fdpoll.Default()
	}
	s.loops = make([]*loopState, s.group.Len())
	for i := range s.loops {
		s.loops[i] = &loopState{l: s.group.Loop(i), baseCtx: context.Background()}
	}
	if s.TLSConfig != nil {
		s.tlsConfig = s.TLSConfig.Clone()
		if len(s.tlsConfig.NextProtos) == 0 {
			s.tlsConfig.NextProtos = []string{"http/1.1"}
		}
	}
	return nil
}

// ListenAndServe listens on s.Addr with one socket per loop (SO_REUSEPORT,
// on Linux) and serves until Shutdown or Close, after which it returns
// ErrServerClosed.
func (s *Server) ListenAndServe() error {
	if err := s.init(); err != nil {
		return err
	}
	lns, err := s.listenAll()
	if err != nil {
		return err
	}
	return s.serveListeners(lns, nil)
}

// Addrs returns the addresses the server listens on, once it does: with
// Addr ":0" it tells the port the system chose.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// ListenAndServeTLS is ListenAndServe over TLS, with the certificate and key
// read from the given files unless TLSConfig already has certificates.
func (s *Server) ListenAndServeTLS(certFile, keyFile string) error {
	if err := s.setupTLS(certFile, keyFile); err != nil {
		return err
	}
	return s.ListenAndServe()
}

// ServeTLS is Serve over TLS; see ListenAndServeTLS.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	if err := s.setupTLS(certFile, keyFile); err != nil {
		return err
	}
	return s.Serve(ln)
}

func (s *Server) setupTLS(certFile, keyFile string) error {
	cfg := &tls.Config{}
	if s.TLSConfig != nil {
		cfg = s.TLSConfig.Clone()
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	s.TLSConfig = cfg
	return nil
}

// listenAll opens a listener on every loop. Where SO_REUSEPORT does not
// spread connections (or is refused), it opens one and hands connections
// out to all loops.
func (s *Server) listenAll() ([]*fdpoll.Listener, error) {
	addr := s.Addr
	if addr == "" {
		addr = ":http"
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	host := ""
	if ta.IP != nil {
		host = ta.IP.String()
	}
	network := "tcp"
	first, err := s.group.Loop(0).Listen(network, net.JoinHostPort(host, strconv.Itoa(ta.Port)), s.group.Len() > 1 && runtime.GOOS == "linux")
	if err != nil && host == "" {
		// No IPv6 on this machine: all IPv4 addresses instead.
		network = "tcp4"
		first, err = s.group.Loop(0).Listen(network, net.JoinHostPort("0.0.0.0", strconv.Itoa(ta.Port)), s.group.Len() > 1 && runtime.GOOS == "linux")
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	lns := []*fdpoll.Listener{first}
	if s.group.Len() > 1 && runtime.GOOS == "linux" {
		port := first.Addr().(*net.TCPAddr).Port
		if network == "tcp4" {
			host = "0.0.0.0"
		}
		bound := net.JoinHostPort(host, strconv.Itoa(port))
		for i := 1; i < s.group.Len(); i++ {
			ln, err := s.group.Loop(i).Listen(network, bound, true)
			if err != nil {
				for _, ln := range lns {
					ln.Close()
				}
				return nil, fmt.Errorf("server: listener of loop %d: %w", i, err)
			}
			lns = append(lns, ln)
		}
	}
	return lns, nil
}

// Serve accepts connections on ln and serves them on the group's loops. ln
// must be backed by a socket (*net.TCPListener, *net.UnixListener or an
// *fdpoll.Listener); one loop accepts and hands connections out in turn.
// Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	if fl, ok := ln.(*fdpoll.Listener); ok {
		return s.serveListeners([]*fdpoll.Listener{fl}, nil)
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return fmt.Errorf("server: Serve needs a socket listener, not %T", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	var fd int
	var dupErr error
	if err := rc.Control(func(raw uintptr) {
		fd, dupErr = unix.FcntlInt(raw, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if dupErr != nil {
		return fmt.Errorf("server: %w", os.NewSyscallError("dup", dupErr))
	}
	network := ln.Addr().Network()
	fl, err := s.group.Loop(0).NewListener(fd, network)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("server: %w", err)
	}
	return s.serveListeners([]*fdpoll.Listener{fl}, ln)
}

// serveListeners runs an accept task per listener and waits for shutdown or
// for every listener to fail. orig, if not nil, is the listener the caller
// gave, closed along with ours.
func (s *Server) serveListeners(lns []*fdpoll.Listener, orig net.Listener) error {
	s.mu.Lock()
	if s.shuttingDown() {
		s.mu.Unlock()
		for _, ln := range lns {
			ln.Close()
		}
		if orig != nil {
			orig.Close()
		}
		return ErrServerClosed
	}
	for _, ln := range lns {
		s.listeners[ln] = struct{}{}
	}
	if orig != nil {
		s.listeners[orig] = struct{}{}
	}
	s.addrs = append(s.addrs, lns[0].Addr())
	s.mu.Unlock()

	spread := len(lns) == 1 && s.group.Len() > 1
	acceptors := make([]fdpoll.Waitable, len(lns))
	for i, ln := range lns {
		base := context.Background()
		if s.BaseContext != nil {
			var userLn net.Listener = ln
			if orig != nil {
				userLn = orig
			}
			base = s.BaseContext(userLn)
			if base == nil {
				panic("server: BaseContext returned a nil context")
			}
		}
		if spread {
			for _, ls := range s.loops {
				ls.baseCtx = base
			}
		} else {
			s.loops[ln.Loop().Index()].baseCtx = base
		}
		acceptors[i] = ln.Loop().Spawn(context.Background(), func(ctx context.Context) error {
			return s.acceptLoop(ctx, ln, spread)
		})
	}
	failed := fdpoll.NewFuture[error]()
	go func() {
		// Every acceptor ended without a shutdown: report why.
		fdpoll.WaitAll(context.Background(), acceptors...)
		var err error
		for _, a := range acceptors {
			if e := a.(*fdpoll.Future[struct{}]).Err(); e != nil {
				err = e
			}
		}
		failed.Complete(err, nil)
	}()
	select {
	case <-s.done:
		return ErrServerClosed
	case <-waitChan(failed):
		if s.shuttingDown() {
			return ErrServerClosed
		}
		err, _ := failed.Result()
		if err == nil {
			err = errors.New("server: listeners closed")
		}
		return err
	}
}

func waitChan[T any](f *fdpoll.Future[T]) <-chan struct{} {
	ch := make(chan struct{})
	f.OnComplete(func(T, error) { close(ch) })
	return ch
}

// acceptLoop accepts connections until the listener closes. Running out of
// fds or memory makes it back off, as net/http does, rather than spin.
func (s *Server) acceptLoop(ctx context.Context, ln *fdpoll.Listener, spread bool) error {
	var backoff time.Duration
	for {
		target := ln.Loop()
		if spread {
			target = s.group.Next()
		}
		c, err := ln.AcceptOn(target)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.shuttingDown() {
				return nil
			}
			if isTemporaryAcceptError(err) {
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else {
					backoff = min(2*backoff, time.Second)
				}
				s.logf("server: accept error: %v; retrying in %v", err, backoff)
				if fdpoll.Sleep(ctx, backoff) != nil {
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		if s.shuttingDown() {
			c.Close()
			continue
		}
		if target == ln.Loop() {
			s.newConn(target, c)
		} else {
			target.Post(func() { s.newConn(target, c) })
		}
	}
}

func isTemporaryAcceptError(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown stops the server gracefully: it closes the listeners, closes
// idle connections, lets requests in progress finish (their connections
// close after their response), and returns when no connection is left or
// ctx is done (with ctx's error).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	lnErr := s.closeListenersLocked()
	for _, fn := range s.onShutdown {
		go fn()
	}
	started := s.started
	s.mu.Unlock()
	s.signalDone()
	if !started {
		return lnErr
	}
	poll := time.Millisecond
	begun := time.Now()
	for {
		s.closeIdle(time.Since(begun) > newConnGrace)
		if s.nconns.Load() == 0 {
			return lnErr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
			poll = min(2*poll, 500*time.Millisecond)
		}
	}
}

// newConnGrace is how long Shutdown lets a connection that has sent nothing
// yet start its request.
const newConnGrace = 5 * time.Second

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	err := s.closeListenersLocked()
	started := s.started
	s.mu.Unlock()
	s.signalDone()
	if started {
		for _, ls := range s.loops {
			ls.l.Post(func() {
				for c := ls.conns; c != nil; {
					next := c.next
					c.close()
					c = next
				}
			})
		}
	}
	return err
}

func (s *Server) signalDone() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		s.doneOnce.Do(func() { close(done) })
	}
}

func (s *Server) closeListenersLocked() error {
	var err error
	for ln := range s.listeners {
		if e := ln.Close(); e != nil && err == nil && !errors.Is(e, net.ErrClosed) {
			err = e
		}
		delete(s.listeners, ln)
	}
	return err
}

// closeIdle closes, on each loop, the connections that have no request in
// progress: idle keep-alive ones, and ones with only part of a request head
// (a TLS connection's task may be parked reading it). A brand-new connection
// that has sent nothing yet is given until force, as net/http gives it a
// few seconds.
func (s *Server) closeIdle(force bool) {
	for _, ls := range s.loops {
		ls.l.Post(func() {
			for c := ls.conns; c != nil; {
				next := c.next
				switch {
				case c.phase == phaseIdle:
					c.close()
				case c.phase == phaseHead && (force || c.served > 0 || len(c.in.Buffered()) > 0):
					c.close()
				}
				c = next
			}
		})
	}
}
