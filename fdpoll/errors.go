package fdpoll

import (
	"errors"
	"fmt"
	"os"
)

var (
	// ErrNotDone is returned by Future.Result before the future completes.
	ErrNotDone = errors.New("fdpoll: future not done")

	// ErrClosed is returned for work submitted to, or suspended on, a group
	// or loop that has been closed.
	ErrClosed = errors.New("fdpoll: loop closed")

	// ErrNotInTask is returned when code running on a loop goroutine outside
	// any task (a Post callback, an OnComplete callback) tries to wait for
	// something that is not ready: the loop would block, so it fails instead.
	ErrNotInTask = errors.New("fdpoll: cannot wait on a loop goroutine outside a task")

	// ErrTimeout is returned by WaitFD when the timeout passes before the fd
	// is ready. It satisfies net.Error with Timeout() == true, and
	// errors.Is(ErrTimeout, os.ErrDeadlineExceeded) holds.
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string        { return "fdpoll: timeout" }
func (timeoutError) Timeout() bool        { return true }
func (timeoutError) Temporary() bool      { return true }
func (timeoutError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// A PanicError is the error a task's future completes with when the task's
// function panics. The loop recovers the panic and keeps running.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the task's stack at the panic
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("fdpoll: task panicked: %v\n\n%s", e.Value, e.Stack)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

var errNoFutures = errors.New("fdpoll: WaitAny with no futures")

// errGoexit completes the future of a task that called runtime.Goexit.
var errGoexit = errors.New("fdpoll: task called runtime.Goexit")
