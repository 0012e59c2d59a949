package fdpoll

import "context"

// OnDone arranges for f to be called once ctx is done, like
// context.AfterFunc, and returns a function that undoes the arrangement,
// reporting whether it did (false once f has been called or stopped).
//
// It is the cheap form for code that watches many short operations, such as
// a client watching each request's context: for a task's own context it
// registers f with the task directly, without the goroutine and the
// allocations of context.AfterFunc, and f is called by the goroutine that
// cancels the task, or by OnDone itself when the task's context is already
// done. For any other context it is context.AfterFunc. So f may run on any
// goroutine, even before OnDone returns, and must not block. For a context
// that can never be done nothing is arranged.
func OnDone(ctx context.Context, f func()) (stop func() bool) {
	if c, ok := ctx.(*taskCtx); ok {
		return c.onDone(f)
	}
	if ctx.Done() == nil {
		return stopNothing
	}
	return context.AfterFunc(ctx, f)
}

func stopNothing() bool { return false }
