package fdpoll

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A parkedFD lets an idle loop wait in the Go runtime's own poller instead
// of in a blocking epoll_wait or kevent of its own.
//
// A goroutine blocked in a syscall keeps its P (the runtime's right to run
// Go code) until the runtime's monitor notices, 20 µs to 10 ms later; in the
// meantime goroutines it made runnable (a net/http handler whose query it
// answered, a channel receiver) cannot run on that P. Parking the goroutine
// in the runtime poller instead releases the P at once, like any goroutine
// waiting on a socket. The loop's epoll (or kqueue) fd is readable whenever
// it has events, so the runtime wakes the loop exactly when it has work; a
// read deadline stands for the loop's next timer. Busy loops never park:
// they poll with a zero timeout.
type parkedFD struct {
	file *os.File
	rc   syscall.RawConn

	// The poll a park repeats, and its last result; read is allocated once.
	poll func() (int, error)
	n    int
	err  error
	read func(uintptr) bool
}

func (p *parkedFD) open(fd int, name string) error {
	if err := unix.SetNonblock(fd, true); err != nil {
		return os.NewSyscallError("setnonblock", err)
	}
	p.file = os.NewFile(uintptr(fd), name)
	rc, err := p.file.SyscallConn()
	if err != nil {
		return fmt.Errorf("fdpoll: %s fd: %w", name, err)
	}
	p.rc = rc
	p.read = func(uintptr) bool {
		p.n, p.err = p.poll()
		return p.n > 0 || p.err != nil
	}
	return nil
}

// close closes the fd; it reports whether there was one.
func (p *parkedFD) close() bool {
	if p.file == nil {
		return false
	}
	p.file.Close()
	p.file = nil
	return true
}

// park calls poll until it reports events or an error, parking the goroutine
// in the runtime poller between calls, for at most timeout (negative: no
// limit).
func (p *parkedFD) park(timeout time.Duration, poll func() (int, error)) (int, error) {
	deadline := time.Time{}
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := p.file.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	p.poll, p.n, p.err = poll, 0, nil
	err := p.rc.Read(p.read)
	p.poll = nil
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, fmt.Errorf("fdpoll: waiting for events: %w", err)
	}
	return p.n, p.err
}
