//go:build linux

package fdpoll

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is a loop's readiness source: an epoll instance plus an eventfd
// other goroutines write to wake the loop. The epoll fd is itself
// registered with the Go runtime's poller (see park).
type poller struct {
	epfd     int
	wakefd   int
	events   []unix.EpollEvent
	full     bool
	noPwait2 bool
	idle     parkedFD
}

func (p *poller) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.epfd, p.wakefd = epfd, wakefd
	p.events = make([]unix.EpollEvent, 256)
	if err := p.idle.open(epfd, "epoll"); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return err
	}
	return nil
}

func (p *poller) close() {
	p.idle.close() // closes epfd
	unix.Close(p.wakefd)
}

// wake makes a concurrent or the next wait return. Safe from any goroutine.
func (p *poller) wake() {
	var one = [8]byte{1}
	for {
		_, err := unix.Write(p.wakefd, one[:])
		if err != unix.EINTR {
			return // EAGAIN: the counter is already non-zero, a wake is pending
		}
	}
}

// register adds a socket owned by the loop, edge-triggered for reading and
// writing; the loop tracks readiness itself.
func (p *poller) register(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// deregister removes fd before it is closed.
func (p *poller) deregister(fd int) {
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// watch sets level-triggered interest in ev for a foreign fd (WaitFD);
// added reports whether fd is already in the set.
func (p *poller) watch(fd int, ev Events, added bool) error {
	var e uint32
	if ev&Readable != 0 {
		e |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if ev&Writable != 0 {
		e |= unix.EPOLLOUT
	}
	op := unix.EPOLL_CTL_ADD
	if added {
		op = unix.EPOLL_CTL_MOD
	}
	event := unix.EpollEvent{Events: e, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epfd, op, fd, &event); err != nil {
		return fmt.Errorf("fdpoll: watch fd %d: %w", fd, os.NewSyscallError("epoll_ctl", err))
	}
	return nil
}

// wait waits up to timeout (negative: forever) for events and returns how
// many there are; read them with event. A zero timeout polls. A loop that
// has to wait parks its goroutine in the Go runtime's poller until the
// epoll fd has events, so an idle loop holds no P (see parkedFD).
func (p *poller) wait(timeout time.Duration) (int, error) {
	if p.full && len(p.events) < 4096 {
		// The last wait filled the buffer: more fds were probably ready.
		p.events = make([]unix.EpollEvent, 2*len(p.events))
	}
	var n int
	var err error
	if timeout == 0 {
		n, err = p.poll()
	} else {
		n, err = p.idle.park(timeout, p.poll)
	}
	if err != nil {
		return 0, err
	}
	p.full = n == len(p.events)
	return n, nil
}

// poll collects ready events without waiting.
func (p *poller) poll() (int, error) {
	var n int
	var err error
	if !p.noPwait2 {
		n, err = epollPwait2(p.epfd, p.events, 0)
		if err == unix.ENOSYS || err == unix.EPERM {
			p.noPwait2 = true // old kernel, or a seccomp filter that forbids it
		}
	}
	if p.noPwait2 {
		n, err = unix.EpollWait(p.epfd, p.events, 0)
	}
	if err == unix.EINTR {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	return n, nil
}

func epollPwait2(epfd int, events []unix.EpollEvent, timeout time.Duration) (int, error) {
	var ts *unix.Timespec
	if timeout >= 0 {
		t := unix.NsecToTimespec(int64(timeout))
		ts = &t
	}
	n, _, errno := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)),
		uintptr(unsafe.Pointer(ts)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// event returns the i-th event of the last wait. ok is false for the loop's
// own wake-up, which it drains.
func (p *poller) event(i int) (fd int, ev Events, ok bool) {
	e := &p.events[i]
	fd = int(e.Fd)
	if fd == p.wakefd {
		var buf [8]byte
		unix.Read(p.wakefd, buf[:])
		return fd, 0, false
	}
	if e.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= Readable
	}
	if e.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ev |= Writable
	}
	return fd, ev, true
}
