//go:build linux

package fdpoll

import "golang.org/x/sys/unix"

// socket creates a non-blocking, close-on-exec socket.
func socket(family, typ int) (int, error) {
	return unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// accept accepts a connection as a non-blocking, close-on-exec socket.
func accept(fd int) (int, error) {
	nfd, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	return nfd, err
}
