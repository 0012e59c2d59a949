package fdpoll

import "sync"

// A waiter is one party waiting for an event: a parked task, a goroutine
// blocked on a channel, or a callback to run on a loop. Waiters are linked
// into a waitList owned by whatever they wait for (a future, a connection's
// readers or writers, a watched fd) and are always woken while the owner's
// lock is held, so a waiter is never touched after it has been unlinked.
type waiter struct {
	next, prev *waiter
	linked     bool
	wakeup
}

// A wakeup says how to wake a waiter; exactly one of its forms is set.
type wakeup struct {
	t   *task         // a parked task: resume it on its loop if still at gen
	gen uint32        // the task's park generation at subscription
	src *futureCore   // the future a task waits for, recorded when it wakes
	ch  chan struct{} // a blocked goroutine: capacity 1, non-blocking send
	fn  func()        // a callback: run on loop l
	l   *Loop
	// orGo: if l has exited, run fn on a goroutine of its own rather than
	// drop it (OnComplete promises to run its callback).
	orGo bool
}

// wake performs the wake-up. It never blocks.
func (w wakeup) wake() {
	switch {
	case w.t != nil:
		w.t.loop.schedule(item{t: w.t, gen: w.gen, src: w.src})
	case w.ch != nil:
		select {
		case w.ch <- struct{}{}:
		default:
		}
	case w.fn != nil:
		if !w.l.postFunc(w.fn) && w.orGo {
			go w.fn()
		}
	}
}

// A waitList is an intrusive doubly linked list of waiters. It is not safe
// for concurrent use; its owner guards it with a lock.
type waitList struct {
	head, tail *waiter
}

func (q *waitList) empty() bool { return q.head == nil }

func (q *waitList) push(w *waiter) {
	w.next, w.prev = nil, q.tail
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	w.linked = true
}

// remove unlinks w if it is still linked into q.
func (q *waitList) remove(w *waiter) {
	if !w.linked {
		return
	}
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.next, w.prev, w.linked = nil, nil, false
}

// wakeAll unlinks and wakes every waiter in q.
func (q *waitList) wakeAll() {
	for w := q.head; w != nil; {
		// Once woken, w is its owner's again: read it before.
		next, wk := w.next, w.wakeup
		w.next, w.prev, w.linked = nil, nil, false
		wk.wake()
		w = next
	}
	q.head, q.tail = nil, nil
}

// chanWaiters recycles the waiters of blocked goroutines together with their
// channels; a goroutine that blocks often does not allocate each time.
var chanWaiters = sync.Pool{New: func() any {
	return &waiter{wakeup: wakeup{ch: make(chan struct{}, 1)}}
}}

func getChanWaiter() *waiter { return chanWaiters.Get().(*waiter) }

// putChanWaiter returns w to the pool. w must be unlinked; a wake-up that
// raced with the unlink is drained so the next user does not see it.
func putChanWaiter(w *waiter) {
	select {
	case <-w.ch:
	default:
	}
	chanWaiters.Put(w)
}
