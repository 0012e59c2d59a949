package fdpoll

import (
	"context"
	"time"
)

// current identifies the caller by goroutine: the task it is running in and
// that task's loop, or (nil, l) for the goroutine of loop l itself outside
// any task, or (nil, nil) for any other goroutine. hint, when not nil, is
// checked first; it is the loop the caller most likely runs on.
//
// Goroutine identity, not the context, decides whether a caller may park:
// a task's context handed to another goroutine must never make that goroutine
// switch the task's coroutine, so such a goroutine blocks instead.
func current(hint *Loop) (*task, *Loop) {
	g := getg()
	if hint != nil {
		if g == hint.curG.Load() {
			return hint.cur, hint
		}
		if g == hint.loopG.Load() {
			return nil, hint
		}
	}
	for _, l := range *registry.Load() {
		if l == hint {
			continue
		}
		if g == l.curG.Load() {
			return l.cur, l
		}
		if g == l.loopG.Load() {
			return nil, l
		}
	}
	return nil, nil
}

// callerLoop returns the loop the caller runs on (in a task or as the loop
// goroutine), or nil.
func callerLoop() *Loop {
	_, l := current(nil)
	return l
}

// A parker waits on behalf of its caller: a task parks and its loop runs
// other work; any other goroutine blocks on a channel.
type parker struct {
	t     *task
	w     *waiter
	owned bool // w is private, not from the pool
}

// newParker returns a parker for the caller. A loop goroutine outside a task
// cannot wait: that is ErrNotInTask.
func newParker(hint *Loop) (parker, error) {
	t, l := current(hint)
	switch {
	case t != nil:
		return parker{t: t, w: &t.co.w}, nil
	case l != nil:
		return parker{}, ErrNotInTask
	}
	return parker{w: getChanWaiter()}, nil
}

// release returns a goroutine's waiter to the pool.
func (p *parker) release() {
	if p.t == nil && p.w != nil && !p.owned {
		putChanWaiter(p.w)
		p.w = nil
	}
}

// private gives a blocking goroutine's parker a waiter of its own, for waits
// whose waker may still hold the waiter after the wait returns (the waiter is
// then left to the garbage collector instead of being recycled).
func (p *parker) private() {
	if p.t == nil {
		putChanWaiter(p.w)
		p.w = &waiter{wakeup: wakeup{ch: make(chan struct{}, 1)}}
		p.owned = true
	}
}

// arm prepares the waiter for one subscription and returns it.
func (p *parker) arm() *waiter {
	if p.t != nil {
		p.w.t, p.w.gen, p.w.src = p.t, p.t.gen, nil
	}
	return p.w
}

// closing reports whether the parking task's loop is shutting down; then it
// must not park again.
func (p *parker) closing() bool { return p.t != nil && p.t.loop.closing }

// wait parks or blocks until the armed waiter is woken, ctx is done, or the
// deadline (zero: none) passes. Wake-ups may be spurious: callers re-check
// what they wait for. It returns ErrClosed if the task's loop began closing.
func (p *parker) wait(ctx context.Context, deadline time.Time) error {
	if t := p.t; t != nil {
		if t.loop.closing {
			return ErrClosed
		}
		stop := t.watch(ctx)
		var tm *timer
		if !deadline.IsZero() {
			tm = &t.co.tm
			*tm = timer{when: monoOf(deadline), t: t, gen: t.gen}
			t.loop.timers.push(tm)
		}
		t.park()
		if stop != nil {
			stop()
		}
		if tm != nil {
			t.loop.stopTimer(tm)
		}
		if t.loop.closing {
			return ErrClosed
		}
		return nil
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		tm := time.NewTimer(time.Until(deadline))
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case <-p.w.ch:
	case <-ctx.Done():
	case <-timeout:
	}
	return nil
}
