package fdpoll

import (
	"runtime"
	"sync/atomic"
)

// A Future is the result of an operation that completes later: a reply from
// a server, a timer, a task's return. It completes exactly once with a value
// and an error; the first call to Complete wins and later ones are ignored.
//
// Complete may be called from any goroutine. Waiting is done with Await,
// WaitAll or WaitAny: inside a task the task suspends and its loop runs
// other work; in a plain goroutine the goroutine blocks.
//
// The zero Future is pending and ready to use.
type Future[T any] struct {
	core futureCore
	val  T
	err  error
}

// futureCore is the part of a future that does not depend on its value
// type: completion state and the waiters to wake.
//
// One word holds both the done flag and a lock bit guarding waiters, so the
// common operations cost one compare-and-swap and one store. Critical
// sections are a few pointer moves plus non-blocking wake-ups, so contenders
// spin briefly and then yield the processor.
type futureCore struct {
	state   atomic.Uint32
	waiters waitList
}

const (
	coreLocked uint32 = 1 << iota
	coreDone
)

// lock acquires the waiter lock and returns the state it found (without the
// lock bit).
func (c *futureCore) lock() uint32 {
	for spins := 0; ; spins++ {
		s := c.state.Load()
		if s&coreLocked == 0 && c.state.CompareAndSwap(s, s|coreLocked) {
			return s
		}
		if spins >= 16 {
			runtime.Gosched()
		}
	}
}

// unlock releases the lock, leaving state s.
func (c *futureCore) unlock(s uint32) { c.state.Store(s &^ coreLocked) }

func (c *futureCore) isDone() bool { return c.state.Load()&coreDone != 0 }

// Waitable is anything WaitAll and WaitAny can wait for. Every *Future[T]
// satisfies it.
type Waitable interface {
	// Done reports whether the future has completed.
	Done() bool
	futureCore() *futureCore
}

// NewFuture returns a pending future.
func NewFuture[T any]() *Future[T] { return new(Future[T]) }

// Completed returns a future that is already done with v and err.
func Completed[T any](v T, err error) *Future[T] {
	f := new(Future[T])
	f.val, f.err = v, err
	f.core.state.Store(coreDone)
	return f
}

// Failed returns a future that is already done with the zero value and err.
func Failed[T any](err error) *Future[T] {
	var zero T
	return Completed(zero, err)
}

// Complete sets the future's result and wakes everything waiting for it.
// It reports whether this call completed the future: only the first call
// does. It is safe to call from any goroutine and never blocks.
func (f *Future[T]) Complete(v T, err error) bool {
	c := &f.core
	if c.lock()&coreDone != 0 {
		c.unlock(coreDone)
		return false
	}
	f.val, f.err = v, err
	if c.waiters.empty() {
		// Nobody to wake (and nobody can subscribe while the lock is
		// held): one store publishes the result and releases the lock.
		c.unlock(coreDone)
		return true
	}
	// Done is visible before anyone wakes: a woken waiter must find it so.
	c.state.Store(coreLocked | coreDone)
	c.waiters.wakeAll()
	c.unlock(coreDone)
	return true
}

// Done reports whether the future has completed.
func (f *Future[T]) Done() bool { return f.core.isDone() }

// Result returns the future's value and error, or the zero value and
// ErrNotDone before it has completed. It never waits.
func (f *Future[T]) Result() (T, error) {
	if !f.core.isDone() {
		var zero T
		return zero, ErrNotDone
	}
	return f.val, f.err
}

// Err returns the future's error, or ErrNotDone before it has completed.
func (f *Future[T]) Err() error {
	_, err := f.Result()
	return err
}

// OnComplete arranges for fn to be called with the future's result once it
// completes. Called from a loop (a task or a callback), fn runs later on that
// loop; called from any other goroutine, fn runs on a goroutine of its own.
// fn runs once, even if the future is already done.
func (f *Future[T]) OnComplete(fn func(T, error)) {
	l := callerLoop()
	call := func() { fn(f.val, f.err) }
	if l == nil {
		// No loop to run on: a goroutine that waits for completion.
		go func() {
			w := getChanWaiter()
			if f.core.subscribe(w) {
				<-w.ch
				f.core.unsubscribe(w)
			}
			putChanWaiter(w)
			call()
		}()
		return
	}
	if !f.core.subscribe(&waiter{wakeup: wakeup{fn: call, l: l, orGo: true}}) {
		if !l.postFunc(call) {
			go call()
		}
	}
}

func (f *Future[T]) futureCore() *futureCore { return &f.core }

// subscribe links w to be woken at completion. It reports false, without
// linking, when the future is already done.
func (c *futureCore) subscribe(w *waiter) bool {
	s := c.lock()
	if s&coreDone == 0 {
		c.waiters.push(w)
	}
	c.unlock(s)
	return s&coreDone == 0
}

// unsubscribe unlinks w if completion has not already done so.
func (c *futureCore) unsubscribe(w *waiter) {
	s := c.lock()
	c.waiters.remove(w)
	c.unlock(s)
}
