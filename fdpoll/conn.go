package fdpoll

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Conn is a non-blocking stream socket owned by a loop. It implements
// net.Conn, so crypto/tls, bufio and anything else written against net.Conn
// runs over it unchanged.
//
// # Who may wait in a Conn
//
// net.Conn's Read and Write take no context, so a Conn decides how to wait by
// looking at who calls: the caller's goroutine identifies it.
//
//   - Code running in a task, on any loop, suspends its task: Read parks until
//     the socket is readable, Write parks while the output buffer is over its
//     high-water mark. The loop runs other tasks meanwhile.
//   - Any other goroutine (a net/http handler, a test, a worker of Go) blocks.
//   - A loop goroutine outside a task (a Post or OnComplete callback) cannot
//     wait; a Read or Write that would have to fails with ErrNotInTask.
//
// Because identity comes from the goroutine and not from a binding, a Conn
// may change hands between tasks (a connection pool) without re-binding, and
// a task's context leaked to another goroutine can never make that goroutine
// switch the task's coroutine.
//
// As with net.Conn, one Read and one Write may be in progress at once from
// different callers; concurrent Reads (or Writes) are safe but interleave in
// no particular order.
//
// # Output
//
// Write copies into the connection's output buffer and returns; the loop
// flushes every connection that gained output at the end of its iteration,
// with one write syscall for all of it. An error met while flushing is
// returned by the next Write. Close sends buffered output before closing the
// socket (for up to LingerTimeout) and CloseWrite half-closes after it.
type Conn struct {
	loop    *Loop
	fd      int
	network string
	laddr   net.Addr
	raddr   net.Addr
	dgram   bool // a connected datagram socket: Write sends at once
	ownFD   bool // made by Dial: no other descriptor refers to the socket
	rready  bool // no read has met EAGAIN since the last readable event

	mu       sync.Mutex
	closed   bool // Close called: no more reads or writes
	released bool // fd closed
	wshut    bool // CloseWrite called
	readers  waitList
	writers  waitList // waiting for buffer space, or for connect
	wbuf     []byte
	woff     int
	werr     error // sticky: the flush failed
	queued   bool  // in the loop's flush list
	linger   *timer
	rdl, wdl time.Time
	wcalls   int // write syscalls made, for tests of coalescing

	lazyLaddr    bool   // laddr is read from the socket on first use
	lazyRaddr    bool   // raddr likewise
	enqueue      func() // adds c to the loop's flush list; allocated once
	whenReadable waiter // the callback of WhenReadable
}

const (
	// highWater is how much unflushed output a Conn holds before Write waits.
	highWater = 64 << 10
	// LingerTimeout bounds how long a closed Conn keeps its socket open to
	// flush buffered output to a peer that does not read.
	LingerTimeout = 10 * time.Second
	// maxPooledBuf is the largest output buffer a loop keeps for reuse.
	maxPooledBuf  = highWater
	maxPooledBufs = 256
)

// newConn wraps a connected or connecting non-blocking socket and registers
// it with l's poller. It must be called on l.
func newConn(l *Loop, fd int, network string) (*Conn, error) {
	c := &Conn{loop: l, fd: fd, network: network, rready: true}
	c.enqueue = func() { c.loop.dirty = append(c.loop.dirty, c) }
	if err := l.register(fd, c, true); err != nil {
		return nil, err
	}
	return c, nil
}

// NewConn takes ownership of fd, a connected stream socket (an accepted
// connection, say), and returns it as a Conn of l. The fd is made
// non-blocking and close-on-exec. NewConn may be called from any goroutine;
// if it fails, fd is left open.
func (l *Loop) NewConn(fd int, network string) (*Conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, os.NewSyscallError("setnonblock", err)
	}
	unix.CloseOnExec(fd)
	return l.adopt(fd, network, nil, false)
}

// adopt wraps a connected non-blocking socket. peer, if known (from
// accept), spares a syscall; the addresses are otherwise read when first
// asked for. own says that no other descriptor refers to the socket.
func (l *Loop) adopt(fd int, network string, peer unix.Sockaddr, own bool) (*Conn, error) {
	c := &Conn{loop: l, fd: fd, network: network, rready: true, ownFD: own, lazyLaddr: true}
	c.enqueue = func() { c.loop.dirty = append(c.loop.dirty, c) }
	if network != "unix" {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if peer != nil {
		c.raddr = addrOf(network, peer)
	} else {
		c.lazyRaddr = true
	}
	if err := l.registerAnywhere(fd, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Loop returns the loop that owns c.
func (c *Conn) Loop() *Loop { return c.loop }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lazyLaddr && !c.released {
		c.lazyLaddr = false
		if sa, err := unix.Getsockname(c.fd); err == nil {
			c.laddr = addrOf(c.network, sa)
		}
	}
	return c.laddr
}

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lazyRaddr && !c.released {
		c.lazyRaddr = false
		if sa, err := unix.Getpeername(c.fd); err == nil {
			c.raddr = addrOf(c.network, sa)
		}
	}
	return c.raddr
}

func (c *Conn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	// The addresses as known: an error path does not make syscalls (and
	// c.mu may be held).
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// Read reads up to len(b) bytes. Inside a task it suspends the task until
// data arrives; elsewhere it blocks. It returns io.EOF at the end of the
// stream, and an error satisfying net.Error with Timeout() true once the
// read deadline passes.
func (c *Conn) Read(b []byte) (int, error) {
	var p parker
	defer p.release()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, c.opErr("read", net.ErrClosed)
		}
		deadline := c.rdl
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			c.mu.Unlock()
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			c.mu.Unlock()
			return 0, nil
		}
		n, err := unix.Read(c.fd, b)
		for err == unix.EINTR {
			n, err = unix.Read(c.fd, b)
		}
		if err != unix.EAGAIN {
			if err == nil && n > 0 {
				c.noteShortRead(n, len(b))
			}
			c.mu.Unlock()
			switch {
			case err != nil:
				return 0, c.opErr("read", os.NewSyscallError("read", err))
			case n == 0 && !c.dgram: // an empty datagram is just that
				return 0, io.EOF
			}
			return n, nil
		}
		c.rready = false
		if p.w == nil {
			if p, err = newParker(c.loop); err != nil {
				c.mu.Unlock()
				return 0, c.opErr("read", err)
			}
		}
		w := p.arm()
		c.readers.push(w)
		c.mu.Unlock()
		err = p.wait(context.Background(), deadline)
		c.mu.Lock()
		c.readers.remove(w)
		c.mu.Unlock()
		if err != nil {
			return 0, c.opErr("read", err)
		}
	}
}

// ErrWouldBlock is returned by TryRead when no data is available yet.
var ErrWouldBlock = errors.New("fdpoll: operation would block")

// TryRead reads what is available without waiting: it returns 0 and
// ErrWouldBlock when a Read would have to wait. Together with WhenReadable
// it lets a server keep idle connections without a task per connection.
func (c *Conn) TryRead(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, c.opErr("read", net.ErrClosed)
	}
	if !c.rdl.IsZero() && !time.Now().Before(c.rdl) {
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	if len(b) == 0 {
		return 0, nil
	}
	n, err := unix.Read(c.fd, b)
	for err == unix.EINTR {
		n, err = unix.Read(c.fd, b)
	}
	switch {
	case err == unix.EAGAIN:
		c.rready = false
		return 0, ErrWouldBlock
	case err != nil:
		return 0, c.opErr("read", os.NewSyscallError("read", err))
	case n == 0 && !c.dgram:
		return 0, io.EOF
	}
	c.noteShortRead(n, len(b))
	return n, nil
}

// noteShortRead records that a stream socket was drained: a read that
// returns less than asked took all there was, and the poller reports any
// later arrival as a new edge. So WhenReadable need not try a read that
// would only say EAGAIN. c.mu must be held.
func (c *Conn) noteShortRead(n, asked int) {
	if n < asked && !c.dgram {
		c.rready = false
	}
}

// WhenReadable arranges for fn to run once, on c's loop, when c may be
// readable: data or end of stream arrived, an error occurred, or c was
// closed. It may run when a read would still block; call TryRead and
// re-arm. fn must not wait (it runs outside any task; spawn one to wait).
func (c *Conn) WhenReadable(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.rready {
		c.loop.schedule(item{fn: fn})
		return
	}
	w := &c.whenReadable
	w.fn, w.l = fn, c.loop
	if !w.linked {
		c.readers.push(w)
	}
}

// Write queues b for sending and returns len(b) unless the connection is
// closed, failed or past its write deadline. It waits (suspending a task,
// blocking a goroutine) only while the output buffer is over its high-water
// mark, so a writer faster than the peer is held back and memory stays
// bounded.
func (c *Conn) Write(b []byte) (int, error) {
	if c.dgram {
		return c.writeDatagram(b)
	}
	var p parker
	defer p.release()
	written := 0
	for {
		c.mu.Lock()
		if err := c.writable(); err != nil {
			c.mu.Unlock()
			return written, err
		}
		deadline := c.wdl
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			c.mu.Unlock()
			return written, c.opErr("write", os.ErrDeadlineExceeded)
		}
		if space := highWater - (len(c.wbuf) - c.woff); space > 0 || len(b) == 0 {
			n := min(space, len(b))
			if n > 0 {
				if c.wbuf == nil {
					c.wbuf = c.loop.getBuf()
				}
				c.wbuf = append(c.wbuf, b[:n]...)
				b = b[n:]
				written += n
				c.queueFlush()
			}
			if len(b) == 0 {
				c.mu.Unlock()
				return written, nil
			}
			c.mu.Unlock()
			continue
		}
		if p.w == nil {
			var err error
			if p, err = newParker(c.loop); err != nil {
				c.mu.Unlock()
				return written, c.opErr("write", err)
			}
		}
		w := p.arm()
		c.writers.push(w)
		c.mu.Unlock()
		err := p.wait(context.Background(), deadline)
		c.mu.Lock()
		c.writers.remove(w)
		c.mu.Unlock()
		if err != nil {
			return written, c.opErr("write", err)
		}
	}
}

// writeDatagram sends b as one datagram, waiting only while the socket's
// send buffer is full.
func (c *Conn) writeDatagram(b []byte) (int, error) {
	var p parker
	defer p.release()
	for {
		c.mu.Lock()
		if err := c.writable(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
		deadline := c.wdl
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			c.mu.Unlock()
			return 0, c.opErr("write", os.ErrDeadlineExceeded)
		}
		n, err := unix.Write(c.fd, b)
		for err == unix.EINTR {
			n, err = unix.Write(c.fd, b)
		}
		if err != unix.EAGAIN {
			c.mu.Unlock()
			if err != nil {
				return 0, c.opErr("write", os.NewSyscallError("write", err))
			}
			return n, nil
		}
		if p.w == nil {
			if p, err = newParker(c.loop); err != nil {
				c.mu.Unlock()
				return 0, c.opErr("write", err)
			}
		}
		w := p.arm()
		c.writers.push(w)
		c.mu.Unlock()
		err = p.wait(context.Background(), deadline)
		c.mu.Lock()
		c.writers.remove(w)
		c.mu.Unlock()
		if err != nil {
			return 0, c.opErr("write", err)
		}
	}
}

// writable returns why c cannot take output, or nil. c.mu must be held.
func (c *Conn) writable() error {
	switch {
	case c.closed:
		return c.opErr("write", net.ErrClosed)
	case c.werr != nil:
		return c.werr
	case c.wshut:
		return c.opErr("write", unix.EPIPE)
	}
	return nil
}

// Flush tries to send buffered output now, without waiting for the end of
// the loop iteration; what the socket does not take is sent later as usual.
// Called off c's loop it only asks the loop to flush soon.
// It returns the error a previous flush met, if any.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.closed {
		return c.opErr("write", net.ErrClosed)
	}
	if !c.loop.onLoop() {
		// Buffers and fd lifetime belong to the loop: ask it.
		c.queueFlush()
		return nil
	}
	c.flushLocked()
	return c.werr
}

// Buffered returns how many bytes of output wait to be sent.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.wbuf) - c.woff
}

// queueFlush puts c on its loop's list of connections to flush at the end
// of the iteration. c.mu must be held.
func (c *Conn) queueFlush() {
	if c.queued {
		return
	}
	c.queued = true
	if c.loop.onLoop() {
		c.loop.dirty = append(c.loop.dirty, c)
	} else {
		c.loop.post(item{fn: c.enqueue})
	}
}

// flush writes buffered output with one syscall per attempt, until the
// buffer is empty or the socket would block (the loop then flushes again on
// writability). It runs on the loop.
func (c *Conn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued = false
	c.flushLocked()
}

func (c *Conn) flushLocked() {
	if c.released {
		return
	}
	for c.woff < len(c.wbuf) {
		n, err := unix.Write(c.fd, c.wbuf[c.woff:])
		c.wcalls++
		if n > 0 {
			c.woff += n
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			c.werr = c.opErr("write", os.NewSyscallError("write", err))
			c.woff = len(c.wbuf)
		}
	}
	pending := len(c.wbuf) - c.woff
	if pending == 0 && c.wbuf != nil {
		c.loop.putBuf(c.wbuf)
		c.wbuf, c.woff = nil, 0
	}
	if pending < highWater/2 {
		c.writers.wakeAll()
	}
	if pending == 0 {
		if c.closed {
			c.releaseLocked()
		} else if c.wshut {
			unix.Shutdown(c.fd, unix.SHUT_WR)
		}
	}
}

// ready handles readiness reported by the poller. It runs on the loop.
func (c *Conn) ready(ev Events) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev&Readable != 0 {
		c.rready = true
		c.readers.wakeAll()
	}
	if ev&Writable != 0 {
		if len(c.wbuf) > c.woff {
			c.flushLocked()
		} else {
			c.writers.wakeAll()
		}
	}
}

// SetDeadline sets the read and write deadlines, as net.Conn specifies.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl, c.wdl = t, t
	c.readers.wakeAll()
	c.writers.wakeAll()
	return nil
}

// SetReadDeadline sets the deadline for pending and future Reads; the zero
// time means none. A Read past it fails with a timeout net.Error.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	c.readers.wakeAll()
	return nil
}

// SetWriteDeadline sets the deadline for pending and future Writes (their
// wait for buffer space); the zero time means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	c.writers.wakeAll()
	return nil
}

// Close closes the connection. Pending Reads and Writes return net.ErrClosed
// wrapped in a *net.OpError. Output already accepted by Write is still sent:
// the socket stays open until it is flushed, the peer fails, or
// LingerTimeout passes.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.opErr("close", net.ErrClosed)
	}
	c.closed = true
	c.readers.wakeAll()
	c.writers.wakeAll()
	c.mu.Unlock()
	c.loop.schedule(item{fn: c.finishClose})
	return nil
}

// CloseWrite shuts down the sending side once buffered output is flushed;
// the peer reads end of file. Reading goes on.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	if err := c.writable(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.wshut = true
	c.queueFlush()
	c.mu.Unlock()
	return nil
}

// finishClose runs on the loop after Close: release the socket now, or once
// its output is flushed.
func (c *Conn) finishClose() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	c.flushLocked()
	if !c.released {
		c.linger = c.loop.addTimer(mono()+int64(LingerTimeout), func() {
			c.mu.Lock()
			c.linger = nil
			c.releaseLocked()
			c.mu.Unlock()
		}, nil, 0)
	}
}

// shutdown releases the socket at once: the loop is closing.
func (c *Conn) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.readers.wakeAll()
	c.writers.wakeAll()
	c.flushLocked()
	c.releaseLocked()
}

// releaseLocked closes the fd. It runs on the loop with c.mu held; every
// syscall on the fd is made under c.mu, so none can reach a reused number.
func (c *Conn) releaseLocked() {
	if c.released {
		return
	}
	c.released = true
	if c.linger != nil {
		c.loop.stopTimer(c.linger)
		c.linger = nil
	}
	// Closing the only descriptor of a socket removes it from the epoll
	// set: a socket Dial made needs no EPOLL_CTL_DEL (kqueue likewise).
	c.loop.deregister(c.fd, !c.ownFD)
	unix.Close(c.fd)
	if c.wbuf != nil {
		c.loop.putBuf(c.wbuf)
		c.wbuf, c.woff = nil, 0
	}
}

// flush sends the output of every connection that gained some during this
// iteration.
func (l *Loop) flush() {
	for i, c := range l.dirty {
		l.dirty[i] = nil
		c.flush()
	}
	l.dirty = l.dirty[:0]
}

// getBuf returns an empty output buffer: from l's pool on the loop, new
// elsewhere.
func (l *Loop) getBuf() []byte {
	if l.onLoop() {
		if n := len(l.bufs); n > 0 {
			b := l.bufs[n-1]
			l.bufs[n-1] = nil
			l.bufs = l.bufs[:n-1]
			return b
		}
	}
	return make([]byte, 0, 4096)
}

// putBuf recycles b. It runs on the loop.
func (l *Loop) putBuf(b []byte) {
	if cap(b) <= maxPooledBuf && len(l.bufs) < maxPooledBufs {
		l.bufs = append(l.bufs, b[:0])
	}
}
