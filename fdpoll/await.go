package fdpoll

import (
	"context"
	"time"
)

// Await waits for f and returns its result.
//
// If f is already done it returns at once, without allocating. Inside a task
// (any code running on a loop's task coroutine, whatever ctx it passes), the
// task suspends: the loop runs other tasks and resumes this one when f
// completes or ctx is done. In any other goroutine, such as a net/http
// handler, Await blocks until f completes or ctx is done. This is what lets
// one handler run unchanged on the yieldio server and on net/http.
//
// When ctx is done first, Await returns ctx.Err(); f is not cancelled. On a
// loop goroutine outside a task it returns ErrNotInTask rather than block the
// loop, and in a task whose loop is closing it returns ErrClosed.
//
// A sequence pulled with iter.Pull inside a task runs on a coroutine of its
// own, which is not the task: waiting there blocks the loop. Iterate with
// range over a function instead, which runs on the task itself.
func Await[T any](ctx context.Context, f *Future[T]) (T, error) {
	if f.core.isDone() {
		return f.val, f.err
	}
	if err := awaitCore(ctx, &f.core); err != nil {
		var zero T
		return zero, err
	}
	return f.val, f.err
}

// awaitCore waits until c is done or ctx is; it returns nil when c is done.
func awaitCore(ctx context.Context, c *futureCore) error {
	if tc, ok := ctx.(*taskCtx); ok {
		// The common case: a task awaiting with its own context.
		if l := tc.t.loop; getg() == l.curG.Load() && l.cur == tc.t {
			return tc.t.await(c)
		}
	}
	p, err := newParker(hintOf(ctx))
	if err != nil {
		return err
	}
	defer p.release()
	for {
		if c.isDone() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		w := p.arm()
		w.src = c
		if !c.subscribe(w) {
			return nil
		}
		err := p.wait(ctx, time.Time{})
		if p.t == nil || p.t.wokeBy != c {
			// Woken by something else: completion may not have unlinked w.
			c.unsubscribe(w)
		}
		if err != nil && !c.isDone() {
			return err
		}
	}
}

// await is awaitCore for task t waiting with its own context, on its loop.
func (t *task) await(c *futureCore) error {
	w := &t.co.w
	for {
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if t.loop.closing {
			return ErrClosed
		}
		w.t, w.gen, w.src = t, t.gen, c
		if !c.subscribe(w) {
			return nil
		}
		if t.ctxWatch == nil {
			t.watch(&t.ctx)
		}
		t.park()
		if t.wokeBy == c {
			return nil
		}
		c.unsubscribe(w)
		if c.isDone() {
			return nil
		}
	}
}

// WaitAll waits until every future in fs is done. It returns nil when they
// all are, whatever their own errors, or ctx's error if ctx is done first.
func WaitAll(ctx context.Context, fs ...Waitable) error {
	for _, f := range fs {
		c := f.futureCore()
		if c.isDone() {
			continue
		}
		if err := awaitCore(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// WaitAny waits until at least one future in fs is done and returns the
// index of the first done one (the lowest index if several are). With no
// futures, or if ctx is done first, it returns -1 and an error.
func WaitAny(ctx context.Context, fs ...Waitable) (int, error) {
	if len(fs) == 0 {
		return -1, errNoFutures
	}
	first := func() int {
		for i, f := range fs {
			if f.Done() {
				return i
			}
		}
		return -1
	}
	if i := first(); i >= 0 {
		return i, nil
	}
	p, err := newParker(hintOf(ctx))
	if err != nil {
		return -1, err
	}
	defer p.release()
	// One waiter per future, all waking the same task or channel.
	ws := make([]waiter, len(fs))
	for {
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		proto := p.arm()
		subscribed := true
		for i := range ws {
			ws[i] = waiter{wakeup: proto.wakeup}
			if !fs[i].futureCore().subscribe(&ws[i]) {
				subscribed = false
				break
			}
		}
		var err error
		if subscribed {
			err = p.wait(ctx, time.Time{})
		}
		for i := range ws {
			fs[i].futureCore().unsubscribe(&ws[i])
		}
		if i := first(); i >= 0 {
			return i, nil
		}
		if err != nil {
			return -1, err
		}
	}
}
