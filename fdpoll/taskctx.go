package fdpoll

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// taskCtx is the context a task's function receives: cancellable (when the
// task returns, when its parent is cancelled, when the group closes) and
// carrying the task as a value.
//
// It costs nothing until it is observed. Most request handlers never call
// Done or derive a context, so the channel, the subscription to the parent
// and the list of callbacks are only made when someone does: Err consults the
// parent directly, Done and AfterFunc create what they need. A task that is
// never observed is cancelled by setting a word.
type taskCtx struct {
	parent context.Context
	t      *task

	err  atomic.Pointer[error]
	done atomic.Pointer[chan struct{}]

	mu         sync.Mutex
	afters     []*afterFunc
	watching   atomic.Bool // the parent's cancellation is watched, or being
	stopParent func() bool // the subscription to parent's cancellation
}

type afterFunc struct {
	f       func()
	removed bool
}

type taskKey struct{}

// cancelCtxKey is the key the context package asks Value for to find an
// ancestor *cancelCtx (for context.Cause and child registration). A task
// context answers nil for it: it is a context of its own kind, and an
// ancestor that is not cancelled must not speak for it. The key is
// unexported, so it is learnt once from context.Cause itself.
var cancelCtxKey = func() any {
	p := &keyProbe{Context: context.Background()}
	context.Cause(p)
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	if p.key == nil {
		p.key = key
	}
	return nil
}

func (c *taskCtx) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *taskCtx) Value(key any) any {
	switch key {
	case taskKey{}:
		return c.t
	case cancelCtxKey:
		return nil
	}
	return c.parent.Value(key)
}

func (c *taskCtx) Err() error {
	if e := c.err.Load(); e != nil {
		return *e
	}
	if err := c.parent.Err(); err != nil {
		c.cancel(context.Canceled)
		return err
	}
	return nil
}

func (c *taskCtx) Done() <-chan struct{} {
	if d := c.done.Load(); d != nil {
		return *d
	}
	c.mu.Lock()
	if d := c.done.Load(); d != nil {
		c.mu.Unlock()
		return *d
	}
	ch := make(chan struct{})
	c.done.Store(&ch)
	if c.err.Load() != nil {
		close(ch)
	}
	c.mu.Unlock()
	c.watchParent()
	return ch
}

// AfterFunc arranges for f to run once c is cancelled and returns a function
// that undoes it, reporting whether it did. The context package uses it
// (instead of a goroutine) when a context is derived from c or given to
// context.AfterFunc; f is called synchronously by the cancelling goroutine,
// so it must not block. It never runs f on the calling goroutine: the
// context package calls AfterFunc holding the lock of the derived context,
// which f takes. If c is already cancelled, f runs on a goroutine of its
// own, as with context.AfterFunc.
func (c *taskCtx) AfterFunc(f func()) func() bool { return c.afterFunc(f, false) }

// onDone is AfterFunc for fdpoll's own callers, who hold no lock f needs:
// if c is already cancelled, f runs at once on the calling goroutine.
func (c *taskCtx) onDone(f func()) func() bool { return c.afterFunc(f, true) }

func (c *taskCtx) afterFunc(f func(), now bool) func() bool {
	// First: subscribing may find the parent cancelled and cancel c at
	// once, running the callbacks registered so far on this goroutine;
	// f, registered after, is then left to the check below.
	c.watchParent()
	c.mu.Lock()
	if c.err.Load() != nil {
		c.mu.Unlock()
		if now {
			f()
		} else {
			go f()
		}
		return stopNothing
	}
	a := &afterFunc{f: f}
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.afters {
			if x == a {
				c.afters = append(c.afters[:i], c.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// watchParent subscribes to the parent's cancellation, once. c.mu must not
// be held: a parent that is a task's context and already cancelled calls
// c.cancel at once.
func (c *taskCtx) watchParent() {
	if c.watching.Load() { // the usual case after the first call: no lock
		return
	}
	c.mu.Lock()
	if c.watching.Load() || c.err.Load() != nil {
		c.mu.Unlock()
		return
	}
	c.watching.Store(true)
	c.mu.Unlock()
	// OnDone: a parent that is itself a task's context (a task spawned by
	// a task) is watched without context.AfterFunc's goroutine and
	// allocations, and a parent that can never be cancelled costs nothing.
	stop := OnDone(c.parent, func() { c.cancel(context.Canceled) })
	c.mu.Lock()
	if c.err.Load() != nil { // cancelled meanwhile: cancel found no stop
		c.mu.Unlock()
		stop()
		return
	}
	c.stopParent = stop
	c.mu.Unlock()
}

// cancel cancels c with err: closes Done if it exists, runs the callbacks
// and drops the subscription to the parent.
func (c *taskCtx) cancel(err error) {
	if c.err.Load() != nil {
		return
	}
	// The parent's error is read before taking c.mu: asking a parent that
	// is a task's context may cancel it on the spot, which calls back into
	// c.cancel through c's subscription.
	if perr := c.parent.Err(); perr != nil {
		err = perr // cancelled because the parent was: say so as it does
	}
	c.mu.Lock()
	if c.err.Load() != nil {
		c.mu.Unlock()
		return
	}
	c.err.Store(errPtr(err))
	d := c.done.Load()
	afters := c.afters
	c.afters = nil
	stop := c.stopParent
	c.stopParent = nil
	c.mu.Unlock()
	if d != nil {
		close(*d)
	}
	for _, a := range afters {
		a.f()
	}
	if stop != nil {
		stop()
	}
}

// errPtr returns a pointer to err, without allocating for the usual ones.
func errPtr(err error) *error {
	switch err {
	case context.Canceled:
		return &context.Canceled
	case context.DeadlineExceeded:
		return &context.DeadlineExceeded
	}
	p := new(error)
	*p = err
	return p
}
