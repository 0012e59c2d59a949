package fdpoll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Dial connects to address on the named network and returns a future of the
// connection. Networks are "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"
// (address "ip:port" with a numeric IP, as in "127.0.0.1:5432" or
// "[::1]:53"; resolve names first, e.g. with dnsasync) and "unix" (a stream
// socket path).
//
// A UDP Conn is connected: the kernel picks a random ephemeral source port
// and delivers only datagrams from the dialled address and port. Each Write
// sends one datagram at once (no buffering), and each Read returns one
// datagram, truncated to the buffer.
//
// The connection belongs to the loop of ctx's task, or of the calling task,
// or, called outside any task, to a loop of the default group. ctx bounds
// the connect: when it is done first the future fails with ctx's error.
func Dial(ctx context.Context, network, address string) *Future[*Conn] {
	l := LoopOf(ctx)
	if l == nil {
		l = callerLoop()
	}
	if l == nil {
		l = Default().Next()
	}
	return l.Dial(ctx, network, address)
}

// Dial connects to address on the named network from loop l. See Dial.
func (l *Loop) Dial(ctx context.Context, network, address string) *Future[*Conn] {
	family, sa, err := sockaddr(network, address)
	if err != nil {
		return Failed[*Conn](&net.OpError{Op: "dial", Net: network, Err: err})
	}
	return Call(l, ctx, func(ctx context.Context) (*Conn, error) {
		c, err := l.connect(ctx, network, family, sa)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: addrOf(network, sa), Err: err}
		}
		return c, nil
	})
}

// connect runs in a task on l.
func (l *Loop) connect(ctx context.Context, network string, family int, sa unix.Sockaddr) (*Conn, error) {
	dgram := strings.HasPrefix(network, "udp")
	typ := unix.SOCK_STREAM
	if dgram {
		typ = unix.SOCK_DGRAM
	}
	fd, err := socket(family, typ)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if family != unix.AF_UNIX && !dgram {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	err = unix.Connect(fd, sa)
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	inProgress := err != nil
	c, err := newConn(l, fd, network)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	c.dgram, c.ownFD = dgram, true
	if inProgress {
		// A stream socket: wait for the connect to finish. One that
		// returned 0 (datagram and unix sockets) is done already.
		if err := c.awaitConnect(ctx); err != nil {
			c.mu.Lock()
			c.closed = true
			c.releaseLocked()
			c.mu.Unlock()
			return nil, err
		}
	}
	// The peer is the address dialled; the local address is read from the
	// socket when first asked for. (Each of x/sys/unix's Getsockname and
	// Getpeername costs two syscalls on Linux: it asks SO_PROTOCOL too.)
	c.raddr = addrOf(network, sa)
	c.lazyLaddr = true
	return c, nil
}

// awaitConnect waits for a non-blocking connect to finish.
func (c *Conn) awaitConnect(ctx context.Context) error {
	p, err := newParker(c.loop)
	if err != nil {
		return err
	}
	defer p.release()
	var deadline time.Time
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return net.ErrClosed
		}
		soerr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			c.mu.Unlock()
			return os.NewSyscallError("getsockopt", err)
		}
		switch e := unix.Errno(soerr); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		case 0:
			if _, err := unix.Getpeername(c.fd); err == nil {
				c.mu.Unlock()
				return nil
			}
		default:
			c.mu.Unlock()
			return os.NewSyscallError("connect", e)
		}
		if err := ctx.Err(); err != nil {
			c.mu.Unlock()
			return err
		}
		w := p.arm()
		c.writers.push(w)
		c.mu.Unlock()
		err = p.wait(ctx, deadline)
		c.mu.Lock()
		c.writers.remove(w)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

var errNotNumeric = errors.New("address must be a numeric ip:port (resolve host names first)")

// sockaddr parses a Dial address.
func sockaddr(network, address string) (int, unix.Sockaddr, error) {
	switch network {
	case "unix":
		if address == "" {
			return 0, nil, errors.New("empty unix socket path")
		}
		return unix.AF_UNIX, &unix.SockaddrUnix{Name: address}, nil
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return 0, nil, net.UnknownNetworkError(network)
	}
	v4only, v6only := strings.HasSuffix(network, "4"), strings.HasSuffix(network, "6")
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %q", errNotNumeric, address)
	}
	ip := ap.Addr()
	if ip.Is4In6() && !v6only {
		ip = ip.Unmap()
	}
	switch {
	case ip.Is4() && !v6only:
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}, nil
	case ip.Is6() && !v4only:
		sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
		if zone := ip.Zone(); zone != "" {
			ifi, err := net.InterfaceByName(zone)
			if err != nil {
				return 0, nil, err
			}
			sa.ZoneId = uint32(ifi.Index)
		}
		return unix.AF_INET6, sa, nil
	}
	return 0, nil, &net.AddrError{Err: "address family does not match network", Addr: address}
}

// addrOf converts a socket address to a net.Addr.
func addrOf(network string, sa unix.Sockaddr) net.Addr {
	ipAddr := func(ip net.IP, port int, zone string) net.Addr {
		if strings.HasPrefix(network, "udp") {
			return &net.UDPAddr{IP: ip, Port: port, Zone: zone}
		}
		return &net.TCPAddr{IP: ip, Port: port, Zone: zone}
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return ipAddr(net.IP(sa.Addr[:]).To16(), sa.Port, "")
	case *unix.SockaddrInet6:
		zone := ""
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				zone = ifi.Name
			}
		}
		return ipAddr(append(net.IP(nil), sa.Addr[:]...), sa.Port, zone)
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: network}
	}
	return nil
}
