//go:build linux

package pgasync

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/yieldio/yieldio/fdpoll"
	"golang.org/x/sys/unix"
)

// dialLowWater connects to addr ("ip:port") from a task on l, like l.Dial,
// but with a socket of its own making: it returns, with the connection, a
// second descriptor of the same socket through which the reader sets the
// socket's receive low-water mark (see conn.setLowWater). The descriptor is
// the caller's to close; fdpoll never sees it, so its number cannot be
// closed and reused under the caller.
func dialLowWater(ctx context.Context, l *fdpoll.Loop, addr string) (*fdpoll.Conn, int, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, -1, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if ip := ap.Addr().Unmap(); ip.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	} else if ap.Addr().Zone() != "" {
		// A link-local address and its zone: fdpoll's Dial knows zones.
		nc, err := fdpoll.Await(ctx, l.Dial(ctx, "tcp", addr))
		return nc, -1, err
	} else {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, opErr(os.NewSyscallError("socket", err))
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	err = unix.Connect(fd, sa)
	for err == unix.EINPROGRESS || err == unix.EINTR || err == unix.EALREADY {
		if err := fdpoll.WaitFD(ctx, fd, fdpoll.Writable, 0); err != nil {
			return nil, -1, opErr(err)
		}
		soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if gerr != nil {
			return nil, -1, opErr(os.NewSyscallError("getsockopt", gerr))
		}
		err = nil
		if soerr != 0 {
			err = unix.Errno(soerr)
		}
	}
	if err != nil {
		return nil, -1, opErr(os.NewSyscallError("connect", err))
	}
	sock, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, -1, opErr(os.NewSyscallError("fcntl", err))
	}
	nc, err := l.NewConn(fd, "tcp")
	if err != nil {
		unix.Close(sock)
		return nil, -1, opErr(err)
	}
	ok = true
	return nc, sock, nil
}

// setRcvLowat sets the socket's receive low-water mark: the kernel neither
// reports the socket readable nor wakes its waiters until n bytes are
// waiting (a read still returns whatever there is). Lowering it below what
// is waiting reports the socket readable at once.
func setRcvLowat(sock, n int) error {
	return unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_RCVLOWAT, n)
}

func closeSock(sock int) { unix.Close(sock) }

// lowWaterWorks reports whether the kernel wakes a reader when its socket's
// low-water mark is lowered under what is buffered, which the mark's timer
// relies on: Linux 4.18 and later (tcp_set_rcvlowat). Older kernels keep
// the read pause.
var lowWaterWorks = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 4, 18)
})

// kernelAtLeast reports whether release ("6.1.0-18-amd64") is at least
// major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
