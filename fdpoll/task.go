package fdpoll

import (
	"context"
	"iter"
	"runtime/debug"
)

// A task is one function running as a coroutine on a loop. It only ever runs
// on its loop's goroutine, interleaved with the loop's other tasks at the
// points where it parks, so tasks of one loop share memory without locks.
type task struct {
	fut    Future[struct{}] // completes when fn returns
	loop   *Loop
	fn     func(context.Context) error
	parent context.Context // until started
	ctx    taskCtx
	co     *coro
	then   func(err error) // called after fut completes, if set

	// Scheduling state, touched only on the loop.
	started, finished  bool
	parked             bool
	gen                uint32      // park generation; a wake for an older one is stale
	wokeBy             *futureCore // the future whose completion resumed it last
	ctxWatch           func() bool
	prevLive, nextLive *task
}

// anyGen wakes a parked task whatever its generation; park generations skip
// it. Every park site re-checks its condition after waking, so such a wake is
// at worst spurious.
const anyGen = ^uint32(0)

// taskOf returns the task ctx belongs to, or nil.
func taskOf(ctx context.Context) *task {
	if c, ok := ctx.(*taskCtx); ok {
		return c.t
	}
	t, _ := ctx.Value(taskKey{}).(*task)
	return t
}

// run calls the task's function on its coroutine and completes its future,
// converting a panic into a *PanicError.
func (t *task) run() {
	var err error
	returned := false
	defer func() {
		if !returned {
			if r := recover(); r != nil {
				err = &PanicError{Value: r, Stack: debug.Stack()}
			} else {
				// runtime.Goexit: the coroutine is unwinding and cannot be
				// reused; the loop replaces its goroutine (see Loop.serve).
				// Its identity goes first: the runtime reuses the
				// descriptor of a goroutine that ends.
				err = errGoexit
				t.co.dead = true
				t.loop.curG.Store(0)
			}
		}
		t.finish(err)
	}()
	err = t.fn(&t.ctx)
	returned = true
}

func (t *task) finish(err error) {
	t.finished = true
	if t.ctxWatch != nil {
		t.ctxWatch()
		t.ctxWatch = nil
	}
	t.ctx.cancel(context.Canceled)
	t.complete(err)
}

// complete completes the task's future and runs its continuation.
func (t *task) complete(err error) {
	t.fut.Complete(struct{}{}, err)
	if t.then != nil {
		t.then(err)
	}
}

// park suspends the running task until its loop resumes it for a wake of the
// current generation. Only the task's own coroutine may call it.
func (t *task) park() {
	t.parked = true
	t.co.yield(struct{}{})
}

// watch arranges for ctx's cancellation to wake t while it is parked and
// returns a function that undoes the arrangement (nil if there is nothing to
// undo). The task's own context is watched once for the task's lifetime.
func (t *task) watch(ctx context.Context) func() bool {
	if c, ok := ctx.(*taskCtx); ok {
		// A task context needs no channel to be watched.
		if c == &t.ctx {
			if t.ctxWatch == nil {
				t.ctxWatch = t.ctx.onDone(func() { t.loop.wakeTask(t, anyGen) })
			}
			return nil
		}
		gen := t.gen
		return c.onDone(func() { t.loop.wakeTask(t, gen) })
	}
	if ctx.Done() == nil {
		return nil
	}
	gen := t.gen
	return context.AfterFunc(ctx, func() { t.loop.wakeTask(t, gen) })
}

// A coro is a coroutine that runs tasks one after another; finished coroutines
// wait in their loop's pool for the next task.
type coro struct {
	loop  *Loop
	next  func() (struct{}, bool)
	stop  func()
	yield func(struct{}) bool
	g     uintptr // the coroutine goroutine's identity
	job   *task
	dead  bool

	// Reused by every park of the task the coroutine runs; every park site
	// unlinks the waiter and stops the timer before it returns, so the next
	// task finds them free.
	w  waiter
	tm timer
}

func newCoro(l *Loop) *coro {
	c := &coro{loop: l}
	c.next, c.stop = iter.Pull(c.body)
	return c
}

func (c *coro) body(yield func(struct{}) bool) {
	c.yield = yield
	c.g = getg()
	c.loop.curG.Store(c.g)
	for {
		c.job.run()
		c.job = nil
		if !yield(struct{}{}) {
			return
		}
	}
}
