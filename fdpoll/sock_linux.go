//go:build linux

package fdpoll

import "golang.org/x/sys/unix"

// socket creates a non-blocking, close-on-exec socket.
func socket(family, typ int) (int, error) {
	return unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// accept accepts a connection as a non-blocking, close-on-exec socket and
// returns the peer's address.
func accept(fd int) (int, unix.Sockaddr, error) {
	return unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
}
