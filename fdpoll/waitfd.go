package fdpoll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Events is a set of readiness conditions of a file descriptor.
type Events uint8

const (
	// Readable: a read would not block (data, end of file, or an error).
	Readable Events = 1 << iota
	// Writable: a write would not block.
	Writable
)

func (ev Events) String() string {
	switch ev {
	case Readable:
		return "readable"
	case Writable:
		return "writable"
	case Readable | Writable:
		return "readable|writable"
	}
	return fmt.Sprintf("Events(%d)", uint8(ev))
}

var errNoEvents = errors.New("fdpoll: WaitFD needs Readable, Writable or both")

// WaitFD waits until fd is ready for any of ev, the timeout passes, or ctx is
// done, and returns nil, ErrTimeout or ctx's error respectively. A timeout
// <= 0 means no timeout besides ctx. An fd in an error or hang-up state
// counts as ready for everything, as with poll(2), so the next read or write
// reports the condition; regular files are always ready.
//
// Inside a task the task suspends while the loop watches fd; any other
// goroutine blocks while a loop of the default group watches it. fd stays the
// caller's: WaitFD never reads, writes or closes it. Closing fd while a
// WaitFD on it is pending leaves that wait to its timeout or ctx, or fails
// it if the fd number is reused by a Conn or Listener of the loop.
func WaitFD(ctx context.Context, fd int, ev Events, timeout time.Duration) error {
	ev &= Readable | Writable
	if ev == 0 {
		return errNoEvents
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if ready, err := pollNow(fd, ev); ready || err != nil {
		return err
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	p, err := newParker(hintOf(ctx))
	if err != nil {
		return err
	}
	defer p.release()

	fw := &fdWait{fd: fd, ev: ev}
	var l *Loop
	if p.t != nil {
		l = p.t.loop
		fw.w = p.arm()
		l.addWait(fw)
	} else {
		l = Default().Next()
		p.private() // the loop may wake it after we return
		fw.w = p.arm()
		l.Post(func() { l.addWait(fw) })
	}
	defer func() {
		if p.t != nil {
			l.removeWait(fw)
		} else {
			l.Post(func() { l.removeWait(fw) })
		}
	}()
	for {
		switch fw.state.Load() {
		case waitReady:
			return nil
		case waitFailed:
			return fw.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return ErrTimeout
		}
		if err := p.wait(ctx, deadline); err != nil {
			return err
		}
		if p.t != nil {
			fw.w = p.arm() // a new generation for the next park
		}
	}
}

// pollNow checks fd's readiness without waiting.
func pollNow(fd int, ev Events) (bool, error) {
	pfd := []unix.PollFd{{Fd: int32(fd)}}
	if ev&Readable != 0 {
		pfd[0].Events |= unix.POLLIN
	}
	if ev&Writable != 0 {
		pfd[0].Events |= unix.POLLOUT
	}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("fdpoll: WaitFD: %w", os.NewSyscallError("poll", err))
		}
		if n == 0 {
			return false, nil
		}
		if pfd[0].Revents&unix.POLLNVAL != 0 {
			return false, fmt.Errorf("fdpoll: WaitFD: fd %d: %w", fd, unix.EBADF)
		}
		return true, nil
	}
}

// An fdWait is one pending WaitFD.
type fdWait struct {
	fd    int
	ev    Events
	w     *waiter
	state atomic.Uint32
	err   error // set before state becomes waitFailed
	watch *fdWatch
}

const (
	waitPending uint32 = iota
	waitReady
	waitFailed
)

func (fw *fdWait) fail(err error) {
	fw.err = err
	fw.state.Store(waitFailed)
	fw.w.wake()
}

// An fdWatch is a loop's level-triggered registration of a foreign fd, shared
// by the WaitFD calls pending on it.
type fdWatch struct {
	l        *Loop
	fd       int
	interest Events
	waits    []*fdWait
}

// errFDReused fails the WaitFD calls on an fd that was closed while they
// waited and whose number now belongs to a Conn or Listener of the loop.
var errFDReused = errors.New("fdpoll: WaitFD: the fd was closed and its number reused")

// addWait registers fw with the loop's poller. It runs on l.
func (l *Loop) addWait(fw *fdWait) {
	if l.closing {
		fw.fail(ErrClosed)
		return
	}
	var fwch *fdWatch
	if fw.fd < len(l.fds) && l.fds[fw.fd] != nil {
		var ok bool
		if fwch, ok = l.fds[fw.fd].(*fdWatch); !ok {
			fw.fail(fmt.Errorf("fdpoll: WaitFD: fd %d is owned by a connection of this loop", fw.fd))
			return
		}
	} else {
		fwch = &fdWatch{l: l, fd: fw.fd}
	}
	fwch.waits = append(fwch.waits, fw)
	fw.watch = fwch
	// Register even if the watch exists: its registration may be of a file
	// closed since, whose number now names another (the kernel drops the
	// registration of a closed file).
	if err := fwch.update(true); err != nil {
		fwch.drop(fw)
		if errors.Is(err, unix.EPERM) {
			// A regular file or directory: always ready, as with poll(2).
			fw.state.Store(waitReady)
			fw.w.wake()
			return
		}
		fw.fail(err)
	}
}

// removeWait forgets fw once its WaitFD returns. It runs on l.
func (l *Loop) removeWait(fw *fdWait) {
	if w := fw.watch; w != nil {
		w.drop(fw)
		w.update(false)
	}
}

func (w *fdWatch) drop(fw *fdWait) {
	for i, x := range w.waits {
		if x == fw {
			w.waits = append(w.waits[:i], w.waits[i+1:]...)
			break
		}
	}
	fw.watch = nil
}

// update brings the poller's interest in line with the pending waits; with
// force it registers again even if the interest is unchanged. A watch only
// ever touches the poller and the loop's fd table while it owns the fd
// number there.
func (w *fdWatch) update(force bool) error {
	var want Events
	for _, fw := range w.waits {
		want |= fw.ev
	}
	registered := w.interest != 0
	if registered && !w.l.owns(w.fd, w) {
		return nil // displaced: the number is another owner's now
	}
	if want == 0 {
		if registered {
			w.l.deregister(w.fd, true)
			w.interest = 0
		}
		return nil
	}
	if want == w.interest && !force {
		return nil
	}
	err := w.l.poller.watch(w.fd, want, registered)
	if err != nil && registered && errors.Is(err, unix.ENOENT) {
		// The fd was closed and its number reused since we registered it.
		err = w.l.poller.watch(w.fd, want, false)
	}
	if err != nil {
		if registered {
			w.l.deregister(w.fd, true)
			w.interest = 0
		}
		return err
	}
	if !registered {
		w.l.register(w.fd, w, false)
	}
	w.interest = want
	return nil
}

// displaced fails the pending waits of a watch whose fd number another owner
// (a Conn, a Listener) has just registered: the watched file was closed.
func (w *fdWatch) displaced() {
	for _, fw := range w.waits {
		fw.watch = nil
		fw.fail(errFDReused)
	}
	w.waits = nil
	w.interest = 0
}

func (w *fdWatch) ready(ev Events) {
	kept := w.waits[:0]
	for _, fw := range w.waits {
		if fw.ev&ev != 0 {
			fw.watch = nil
			fw.state.Store(waitReady)
			fw.w.wake()
		} else {
			kept = append(kept, fw)
		}
	}
	clear(w.waits[len(kept):])
	w.waits = kept
	w.update(false)
}

func (w *fdWatch) shutdown() {
	for _, fw := range w.waits {
		fw.watch = nil
		fw.fail(ErrClosed)
	}
	w.waits = nil
	w.update(false)
}
