//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package fdpoll

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// poller is a loop's readiness source: a kqueue plus a pipe other goroutines
// write to wake the loop.
type poller struct {
	kq     int
	wr, rd int // wake-up pipe
	events []unix.Kevent_t
	idle   parkedFD
}

func (p *poller) open() error {
	kq, err := unix.Kqueue()
	if err != nil {
		return os.NewSyscallError("kqueue", err)
	}
	unix.CloseOnExec(kq)
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		unix.Close(kq)
		return os.NewSyscallError("pipe", err)
	}
	for _, fd := range fds {
		unix.CloseOnExec(fd)
		unix.SetNonblock(fd, true)
	}
	p.kq, p.rd, p.wr = kq, fds[0], fds[1]
	if err := p.change(p.rd, unix.EVFILT_READ, unix.EV_ADD); err != nil {
		p.close()
		return err
	}
	p.events = make([]unix.Kevent_t, 256)
	if err := p.idle.open(p.kq, "kqueue"); err != nil {
		p.close()
		return err
	}
	return nil
}

func (p *poller) close() {
	if !p.idle.close() {
		unix.Close(p.kq)
	}
	unix.Close(p.rd)
	unix.Close(p.wr)
}

func (p *poller) change(fd int, filter int16, flags uint16) error {
	var ev [1]unix.Kevent_t
	unix.SetKevent(&ev[0], fd, int(filter), int(flags))
	if _, err := unix.Kevent(p.kq, ev[:], nil, nil); err != nil {
		return os.NewSyscallError("kevent", err)
	}
	return nil
}

// wake makes a concurrent or the next wait return. Safe from any goroutine.
func (p *poller) wake() {
	for {
		_, err := unix.Write(p.wr, []byte{1})
		if err != unix.EINTR {
			return // EAGAIN: the pipe is full, a wake is pending
		}
	}
}

// register adds a socket owned by the loop, edge-triggered (EV_CLEAR) for
// reading and writing.
func (p *poller) register(fd int) error {
	if err := p.change(fd, unix.EVFILT_READ, unix.EV_ADD|unix.EV_CLEAR); err != nil {
		return err
	}
	if err := p.change(fd, unix.EVFILT_WRITE, unix.EV_ADD|unix.EV_CLEAR); err != nil {
		p.change(fd, unix.EVFILT_READ, unix.EV_DELETE)
		return err
	}
	return nil
}

func (p *poller) deregister(fd int) {
	p.change(fd, unix.EVFILT_READ, unix.EV_DELETE)
	p.change(fd, unix.EVFILT_WRITE, unix.EV_DELETE)
}

// watch sets level-triggered interest in ev for a foreign fd (WaitFD).
func (p *poller) watch(fd int, ev Events, added bool) error {
	set := func(filter int16, on bool) error {
		if on {
			return p.change(fd, filter, unix.EV_ADD)
		}
		if added {
			p.change(fd, filter, unix.EV_DELETE)
		}
		return nil
	}
	if err := set(unix.EVFILT_READ, ev&Readable != 0); err != nil {
		return fmt.Errorf("fdpoll: watch fd %d: %w", fd, err)
	}
	if err := set(unix.EVFILT_WRITE, ev&Writable != 0); err != nil {
		return fmt.Errorf("fdpoll: watch fd %d: %w", fd, err)
	}
	return nil
}

// wait waits up to timeout (negative: forever) for events and returns how
// many there are; read them with event. A loop that has to wait parks its
// goroutine in the Go runtime's poller (see parkedFD).
func (p *poller) wait(timeout time.Duration) (int, error) {
	if timeout == 0 {
		return p.poll()
	}
	return p.idle.park(timeout, p.poll)
}

// poll collects ready events without waiting.
func (p *poller) poll() (int, error) {
	var zero unix.Timespec
	n, err := unix.Kevent(p.kq, nil, p.events, &zero)
	if err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, os.NewSyscallError("kevent", err)
	}
	return n, nil
}

func (p *poller) event(i int) (fd int, ev Events, ok bool) {
	e := &p.events[i]
	fd = int(e.Ident)
	if fd == p.rd {
		var buf [64]byte
		for {
			if n, _ := unix.Read(p.rd, buf[:]); n < len(buf) {
				break
			}
		}
		return fd, 0, false
	}
	switch e.Filter {
	case unix.EVFILT_READ:
		ev = Readable
	case unix.EVFILT_WRITE:
		ev = Writable
	}
	if e.Flags&(unix.EV_EOF|unix.EV_ERROR) != 0 {
		ev |= Readable | Writable
	}
	return fd, ev, true
}
