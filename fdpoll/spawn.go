package fdpoll

import "context"

// spawnResult runs fn as a task on l and returns a future of its result. A
// panic in fn, or a closed loop, fails the future.
func spawnResult[T any](l *Loop, ctx context.Context, fn func(ctx context.Context) (T, error)) *Future[T] {
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
