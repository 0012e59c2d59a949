package fdpoll

import "context"

// Call runs fn as a task on l and returns a future of its result: the way to
// turn code that waits (reads a Conn, awaits other futures) into a future.
// It may be called from any goroutine. A panic in fn fails the future with a
// *PanicError; on a closed loop the future fails with ErrClosed.
func Call[T any](l *Loop, ctx context.Context, fn func(ctx context.Context) (T, error)) *Future[T] {
	f := NewFuture[T]()
	if ctx == nil {
		ctx = context.Background()
	}
	t := &task{loop: l, parent: ctx}
	t.fn = func(ctx context.Context) error {
		v, err := fn(ctx)
		f.Complete(v, err)
		return nil
	}
	t.then = func(err error) {
		if err != nil {
			f.Complete(*new(T), err)
		}
	}
	l.schedule(item{t: t})
	return f
}
