package fdpoll

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Listener is a listening stream socket owned by a loop. It implements
// net.Listener: Accept inside a task suspends the task until a connection
// arrives; in a plain goroutine it blocks.
type Listener struct {
	loop    *Loop
	fd      int
	network string
	addr    net.Addr

	mu       sync.Mutex
	closed   bool
	released bool
	waiters  waitList
}

// Listen opens a listening socket on l for "tcp", "tcp4", "tcp6" (address
// "ip:port", "[ip]:port" or ":port") or "unix" (a path). With reusePort the
// socket sets SO_REUSEPORT, so every loop of a group can listen on the same
// address and the kernel spreads connections across them (Linux; on other
// systems the option is set but may not balance).
func (l *Loop) Listen(network, address string, reusePort bool) (*Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Err: err}
	}
	family, sa, err := listenSockaddr(network, address)
	if err != nil {
		return nil, opErr(err)
	}
	fd, err := socket(family, unix.SOCK_STREAM)
	if err != nil {
		return nil, opErr(os.NewSyscallError("socket", err))
	}
	if family != unix.AF_UNIX {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				unix.Close(fd)
				return nil, opErr(os.NewSyscallError("setsockopt", err))
			}
		}
		if family == unix.AF_INET6 && network == "tcp6" {
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, opErr(os.NewSyscallError("bind", err))
	}
	if err := unix.Listen(fd, listenBacklog()); err != nil {
		unix.Close(fd)
		return nil, opErr(os.NewSyscallError("listen", err))
	}
	ln, err := l.NewListener(fd, network)
	if err != nil {
		unix.Close(fd)
		return nil, opErr(err)
	}
	return ln, nil
}

// NewListener takes ownership of fd, a listening stream socket, and
// registers it with l. The fd is made non-blocking and close-on-exec. If it
// fails, fd is left open.
func (l *Loop) NewListener(fd int, network string) (*Listener, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, os.NewSyscallError("setnonblock", err)
	}
	unix.CloseOnExec(fd)
	ln := &Listener{loop: l, fd: fd, network: network}
	if sa, err := unix.Getsockname(fd); err == nil {
		ln.addr = addrOf(network, sa)
	}
	if err := l.registerAnywhere(fd, ln); err != nil {
		return nil, err
	}
	return ln, nil
}

// listenBacklog is the kernel's maximum accept queue, as net.Listen uses.
func listenBacklog() int {
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		if n > 0 {
			return n
		}
	}
	return unix.SOMAXCONN
}

// Loop returns the loop that owns ln.
func (ln *Listener) Loop() *Loop { return ln.loop }

// Addr returns the address ln listens on.
func (ln *Listener) Addr() net.Addr { return ln.addr }

// Accept waits for and returns the next connection, owned by ln's loop.
func (ln *Listener) Accept() (net.Conn, error) {
	c, err := ln.AcceptOn(ln.loop)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptOn waits for the next connection and makes it a Conn of loop l,
// which may be another loop than ln's: one listener can feed a group.
func (ln *Listener) AcceptOn(l *Loop) (*Conn, error) {
	var p parker
	defer p.release()
	for {
		ln.mu.Lock()
		if ln.closed {
			ln.mu.Unlock()
			return nil, ln.opErr(net.ErrClosed)
		}
		nfd, peer, err := accept(ln.fd)
		if err == nil {
			ln.mu.Unlock()
			c, err := l.adopt(nfd, ln.network, peer, true)
			if err != nil {
				unix.Close(nfd)
				return nil, ln.opErr(err)
			}
			return c, nil
		}
		switch err {
		case unix.EAGAIN:
		case unix.ECONNABORTED, unix.EINTR:
			ln.mu.Unlock()
			continue // the client gave up; try the next one
		default:
			ln.mu.Unlock()
			// EMFILE and friends: report, as net.Listener does; the
			// caller decides whether to back off and retry.
			return nil, ln.opErr(os.NewSyscallError("accept", err))
		}
		if p.w == nil {
			if p, err = newParker(ln.loop); err != nil {
				ln.mu.Unlock()
				return nil, ln.opErr(err)
			}
		}
		w := p.arm()
		ln.waiters.push(w)
		ln.mu.Unlock()
		err = p.wait(context.Background(), time.Time{})
		ln.mu.Lock()
		ln.waiters.remove(w)
		ln.mu.Unlock()
		if err != nil {
			return nil, ln.opErr(err)
		}
	}
}

func (ln *Listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: ln.network, Addr: ln.addr, Err: err}
}

// Close stops listening. Pending Accepts return net.ErrClosed.
func (ln *Listener) Close() error {
	ln.mu.Lock()
	if ln.closed {
		ln.mu.Unlock()
		return &net.OpError{Op: "close", Net: ln.network, Addr: ln.addr, Err: net.ErrClosed}
	}
	ln.closed = true
	ln.waiters.wakeAll()
	ln.mu.Unlock()
	ln.loop.schedule(item{fn: ln.shutdown})
	return nil
}

func (ln *Listener) ready(ev Events) {
	ln.mu.Lock()
	ln.waiters.wakeAll()
	ln.mu.Unlock()
}

func (ln *Listener) shutdown() {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	ln.closed = true
	ln.waiters.wakeAll()
	if !ln.released {
		ln.released = true
		ln.loop.deregister(ln.fd, true)
		unix.Close(ln.fd)
	}
}

// listenSockaddr parses a Listen address; an empty host means all
// addresses.
func listenSockaddr(network, address string) (int, unix.Sockaddr, error) {
	if network == "unix" {
		return sockaddr(network, address)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return 0, nil, err
	}
	if host == "" {
		if network == "tcp4" {
			host = "0.0.0.0"
		} else {
			host = "::"
		}
	}
	family, sa, err := sockaddr(network, net.JoinHostPort(host, port))
	if err != nil {
		return 0, nil, fmt.Errorf("%w (listen address %q)", err, address)
	}
	return family, sa, nil
}
