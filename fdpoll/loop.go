package fdpoll

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A Loop is one event loop: a goroutine, a poller (epoll or kqueue), a timer
// heap and a queue of work posted from other goroutines. Every fd and every
// task belongs to exactly one loop and is only touched on its goroutine.
//
// One iteration of a loop (1) waits on the poller with the next timer as the
// timeout, (2) runs ready callbacks and resumes ready tasks, then (3) flushes
// every connection that gained output during the iteration, so one write
// syscall carries the output of many tasks.
type Loop struct {
	group  *Group
	index  int
	poller poller

	// Guarded by mu: work posted from other goroutines.
	mu       sync.Mutex
	posted   []item
	sleeping bool // in, or about to enter, a blocking poll
	exited   bool

	// Who runs on the loop: its own goroutine (loopG) or the coroutine of
	// task cur. curG is the identity of the coroutine that ran last; it is
	// only stored when it changes, and a coroutine that ran last but is
	// suspended cannot be calling, so "on the loop" is: loopG or curG.
	// Other goroutines read both to learn that they are not on the loop.
	loopG atomic.Uintptr
	curG  atomic.Uintptr
	cur   *task

	// Loop-only state.
	runq    []item
	head    int
	spare   []item
	timers  timerHeap
	live    *task // started, unfinished tasks
	ntasks  int
	coros   []*coro
	fds     []fdOwner // by fd number
	dirty   []*Conn   // output to flush at the end of the iteration
	bufs    [][]byte  // recycled output buffers
	closing bool
	clean   bool // serve returned normally
	done    chan struct{}

	// crossRecent counts down the iterations since the loop last took
	// work posted by other goroutines (see pollTimeout); yields counts
	// the yields before parking, for tests.
	crossRecent int
	yields      int
	// lastEvents is how many fds the last poll found ready.
	lastEvents int
}

// An item is a unit of work for the loop: start or wake a task, or call fn.
type item struct {
	t   *task
	gen uint32
	src *futureCore // the future whose completion wakes t, if any
	fn  func()
}

// An fdOwner is whatever owns a file descriptor registered with a loop's
// poller: a Conn, a Listener, the watches of WaitFD.
type fdOwner interface {
	ready(ev Events) // readiness reported by the poller, on the loop
	shutdown()       // the loop is closing: release the fd
}

// maxBatch bounds how many ready items one iteration runs before it polls
// for I/O again, so tasks that keep waking each other cannot starve sockets.
const maxBatch = 4096

// crossWindow is how many iterations after the last one that took work
// posted by another goroutine a loop still yields before parking (see
// pollTimeout); yieldBelow is the timer wait short enough that yielding
// beats parking; busyEvents is the number of ready fds in the last poll
// from which the loop counts as busy with socket traffic, and yields too.
const (
	crossWindow = 16
	yieldBelow  = 20 * time.Microsecond
	busyEvents  = 2
)

// maxIdleCoros bounds each loop's pool of finished coroutines.
const maxIdleCoros = 1024

func newLoop(g *Group, index int) (*Loop, error) {
	l := &Loop{group: g, index: index, done: make(chan struct{})}
	if err := l.poller.open(); err != nil {
		return nil, fmt.Errorf("fdpoll: loop %d: %w", index, err)
	}
	return l, nil
}

// Group returns the group l belongs to.
func (l *Loop) Group() *Group { return l.group }

// Index returns l's position in its group.
func (l *Loop) Index() int { return l.index }

// Spawn starts fn as a task on l and returns a future that completes with
// fn's error when it returns. fn's context is derived from ctx and is
// cancelled when fn returns or the group closes. A panic in fn completes the
// future with a *PanicError. Spawn may be called from any goroutine; on a
// closed loop the future fails with ErrClosed.
func (l *Loop) Spawn(ctx context.Context, fn func(ctx context.Context) error) *Future[struct{}] {
	if ctx == nil {
		ctx = context.Background()
	}
	t := &task{loop: l, fn: fn, parent: ctx}
	l.schedule(item{t: t})
	return &t.fut
}

// Post arranges for fn to run on l's goroutine, after whatever is running
// now. It may be called from any goroutine and never blocks. fn must not
// block; it cannot wait (use Spawn for code that waits). Functions posted to
// a closed loop are dropped.
func (l *Loop) Post(fn func()) { l.schedule(item{fn: fn}) }

// LoopOf returns the loop of the task ctx belongs to, or nil if ctx does not
// carry a task.
func LoopOf(ctx context.Context) *Loop {
	if t := taskOf(ctx); t != nil {
		return t.loop
	}
	return nil
}

// Current reports whether the caller runs on l: it is l's goroutine (a Post
// or timer callback) or one of l's tasks. Loop-local state (a per-loop
// cache, say) may be touched without locks exactly when it is true.
func (l *Loop) Current() bool { return l.onLoop() }

// CancelTask cancels the context of the task ctx belongs to, as if its
// parent had been cancelled: its pending waits return context.Canceled. It
// reports whether ctx belongs to a task. A server uses it to stop the
// handler of a client that went away; it may be called from any goroutine.
func CancelTask(ctx context.Context) bool {
	t := taskOf(ctx)
	if t == nil {
		return false
	}
	t.ctx.cancel(context.Canceled)
	return true
}

// onLoop reports whether the caller runs on l (its goroutine or a task).
func (l *Loop) onLoop() bool {
	g := getg()
	return g == l.curG.Load() || g == l.loopG.Load()
}

func (l *Loop) schedule(it item) {
	if l.onLoop() {
		l.runq = append(l.runq, it)
		return
	}
	l.post(it)
}

// postFunc runs fn on l soon, from any goroutine; it reports false if l has
// exited and fn will not run.
func (l *Loop) postFunc(fn func()) bool {
	if l.onLoop() {
		l.runq = append(l.runq, item{fn: fn})
		return true
	}
	return l.post(item{fn: fn})
}

// wakeTask schedules t to resume if it is still parked at generation gen.
// It may be called from any goroutine.
func (l *Loop) wakeTask(t *task, gen uint32) { l.schedule(item{t: t, gen: gen}) }

// post queues it from another goroutine and wakes the loop if it sleeps. It
// reports false, having disposed of it, if the loop has exited.
func (l *Loop) post(it item) bool {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		dropItem(it)
		return false
	}
	l.posted = append(l.posted, it)
	if l.sleeping {
		l.sleeping = false
		// Under mu, so the poller cannot be closed under the write.
		l.poller.wake()
	}
	l.mu.Unlock()
	return true
}

// dropItem disposes of work that reached a loop after it exited.
func dropItem(it item) {
	if it.t != nil && !it.t.started {
		it.t.complete(ErrClosed)
	}
}

// serve is the loop goroutine.
func (l *Loop) serve() {
	defer l.afterServe()
	l.loopG.Store(getg())
	for {
		if l.closing && l.ntasks == 0 && l.head == len(l.runq) {
			// Checked first too: a serve restarted after a task's Goexit
			// may have nothing left to wait for.
			l.exit()
			return
		}
		n, err := l.poller.wait(l.pollTimeout())
		if err != nil {
			panic(fmt.Sprintf("fdpoll: loop %d: %v", l.index, err))
		}
		l.lastEvents = n
		for i := 0; i < n; i++ {
			fd, ev, ok := l.poller.event(i)
			if ok && fd < len(l.fds) && l.fds[fd] != nil {
				l.fds[fd].ready(ev)
			}
		}
		l.takePosted()
		l.fireTimers()
		l.runReady()
		l.flush()
	}
}

// afterServe runs when serve ends. Normally that is the end of the loop; but
// a task that calls runtime.Goexit unwinds through iter.Pull into the loop
// goroutine, which must then be replaced for the loop to go on.
func (l *Loop) afterServe() {
	if l.clean {
		return
	}
	l.curG.Store(0)
	l.loopG.Store(0)
	if t := l.cur; t != nil {
		l.cur = nil
		l.unlink(t)
	}
	go l.serve()
}

// pollTimeout returns how long the poller may block: not at all when work
// is queued, else until the next timer (-1: no timer).
func (l *Loop) pollTimeout() time.Duration {
	if l.head < len(l.runq) || len(l.dirty) > 0 {
		return 0
	}
	timeout := l.timerTimeout()
	if timeout != 0 && (l.crossRecent > 0 || l.lastEvents >= busyEvents || timeout > 0 && timeout <= yieldBelow) {
		// About to park. A goroutine this loop just made runnable (an
		// Await it completed, a channel it sent on) is likely to post
		// work right back: let it run first, so that work is picked up
		// without an eventfd write and a wake-up. A timer about to fire
		// is also better met by yielding than by parking.
		//
		// Gosched is not free: it wakes another thread to look for work
		// (with an idle P, the usual case when a loop is about to park)
		// and that thread goes back to sleep, two futex calls. So a loop
		// yields only while goroutines have posted work to it lately, or
		// while its last poll found several sockets ready: the moment's
		// pause lets more of a busy server's requests arrive before the
		// next poll (server plaintext under wrk: 16 -> 12.5 µs of CPU
		// per request against parking at once). A loop whose work comes
		// from one socket at a time and its own tasks (pgasync's reader
		// behind its low-water mark) parks at once.
		l.yields++
		runtime.Gosched()
		if l.head < len(l.runq) {
			return 0
		}
		timeout = l.timerTimeout()
	}
	l.mu.Lock()
	if len(l.posted) > 0 {
		timeout = 0
	} else if timeout != 0 {
		l.sleeping = true
	}
	l.mu.Unlock()
	return timeout
}

func (l *Loop) takePosted() {
	l.mu.Lock()
	l.sleeping = false
	batch := l.posted
	l.posted = l.spare[:0]
	l.mu.Unlock()
	if len(batch) > 0 {
		l.crossRecent = crossWindow
	} else if l.crossRecent > 0 {
		l.crossRecent--
	}
	l.runq = append(l.runq, batch...)
	clear(batch)
	l.spare = batch[:0]
}

// runReady runs queued items, including ones queued while it runs, up to
// maxBatch.
func (l *Loop) runReady() {
	for budget := maxBatch; budget > 0 && l.head < len(l.runq); budget-- {
		it := l.runq[l.head]
		l.runq[l.head] = item{}
		l.head++
		l.dispatch(it)
	}
	if l.head == len(l.runq) {
		l.runq, l.head = l.runq[:0], 0
	} else if l.head > len(l.runq)/2 {
		n := copy(l.runq, l.runq[l.head:])
		clear(l.runq[n:])
		l.runq, l.head = l.runq[:n], 0
	}
}

func (l *Loop) dispatch(it item) {
	switch t := it.t; {
	case it.fn != nil:
		it.fn()
	case !t.started:
		l.start(t)
	case t.parked && (it.gen == anyGen || it.gen == t.gen):
		t.parked = false
		t.wokeBy = it.src
		if t.gen++; t.gen == anyGen {
			t.gen = 0
		}
		l.switchTo(t)
	}
}

func (l *Loop) start(t *task) {
	if l.closing {
		t.complete(ErrClosed)
		return
	}
	t.started = true
	t.ctx.parent, t.ctx.t = t.parent, t
	t.parent = nil
	t.nextLive = l.live
	if l.live != nil {
		l.live.prevLive = t
	}
	l.live = t
	l.ntasks++

	var c *coro
	if n := len(l.coros); n > 0 {
		c = l.coros[n-1]
		l.coros[n-1] = nil
		l.coros = l.coros[:n-1]
	} else {
		c = newCoro(l)
	}
	c.job = t
	t.co = c
	l.switchTo(t)
}

// switchTo runs t's coroutine until it parks or finishes.
func (l *Loop) switchTo(t *task) {
	l.cur = t
	if g := t.co.g; g != 0 && l.curG.Load() != g {
		l.curG.Store(g)
	}
	t.co.next()
	l.cur = nil
	if t.finished {
		l.unlink(t)
		if c := t.co; !c.dead {
			if len(l.coros) < maxIdleCoros && !l.closing {
				l.coros = append(l.coros, c)
			} else {
				l.stopCoro(c)
			}
		}
		t.co = nil
	}
}

// stopCoro ends an idle coroutine's goroutine. Its identity must stop
// counting as "on the loop" first: the runtime may reuse it.
func (l *Loop) stopCoro(c *coro) {
	if l.curG.Load() == c.g {
		l.curG.Store(0)
	}
	c.stop()
}

func (l *Loop) unlink(t *task) {
	if t.prevLive != nil {
		t.prevLive.nextLive = t.nextLive
	} else {
		l.live = t.nextLive
	}
	if t.nextLive != nil {
		t.nextLive.prevLive = t.prevLive
	}
	t.prevLive, t.nextLive = nil, nil
	l.ntasks--
}

// register makes o the owner of fd on l's poller. It must be called on l.
func (l *Loop) register(fd int, o fdOwner, poll bool) error {
	if poll {
		if err := l.poller.register(fd); err != nil {
			return err
		}
	}
	for fd >= len(l.fds) {
		l.fds = append(l.fds, nil)
	}
	if w, ok := l.fds[fd].(*fdWatch); ok && w != o {
		// A WaitFD watch on a number that was closed and now names this
		// new fd: its waits can never be answered.
		w.displaced()
	}
	l.fds[fd] = o
	return nil
}

// registerAnywhere registers o as the owner of fd from any goroutine: at
// once on the loop, else through a post. A registration that cannot happen
// (a closed loop, a poller error) shuts o down, which closes fd.
func (l *Loop) registerAnywhere(fd int, o fdOwner) error {
	reg := func() {
		if l.closing {
			o.shutdown()
			return
		}
		if err := l.register(fd, o, true); err != nil {
			o.shutdown()
		}
	}
	if l.onLoop() {
		if l.closing {
			return ErrClosed
		}
		return l.register(fd, o, true)
	}
	if !l.post(item{fn: reg}) {
		return ErrClosed
	}
	return nil
}

// deregister removes fd from l before it is closed. It must be called on l.
func (l *Loop) deregister(fd int, poll bool) {
	if poll {
		l.poller.deregister(fd)
	}
	if fd < len(l.fds) {
		l.fds[fd] = nil
	}
}

// owns reports whether o is the registered owner of fd.
func (l *Loop) owns(fd int, o fdOwner) bool {
	return fd < len(l.fds) && l.fds[fd] == o
}

// beginClose starts shutting l down: every task's context is cancelled, every
// parked task is woken (its waits now fail with ErrClosed) and every fd is
// released. The loop exits once its last task returns.
func (l *Loop) beginClose() {
	if l.closing {
		return
	}
	l.closing = true
	for t := l.live; t != nil; t = t.nextLive {
		t.ctx.cancel(context.Canceled)
		if t.parked {
			l.runq = append(l.runq, item{t: t, gen: anyGen})
		}
	}
	for _, o := range l.fds {
		if o != nil {
			o.shutdown()
		}
	}
}

func (l *Loop) exit() {
	// From here on the loop accepts no work: a post fails (tasks that were
	// posted complete with ErrClosed), and no goroutine counts as being on
	// this loop any more. A dead goroutine's descriptor is reused by the
	// runtime, so the identity must go before the goroutine does.
	l.mu.Lock()
	l.exited = true
	rest := l.posted
	l.posted = nil
	l.mu.Unlock()
	l.loopG.Store(0)
	l.curG.Store(0)
	registerLoops([]*Loop{l}, false)

	for _, o := range l.fds {
		if o != nil {
			o.shutdown()
		}
	}
	l.fds = nil
	for _, c := range l.coros {
		l.stopCoro(c)
	}
	l.coros = nil
	clear(l.timers)
	l.timers = nil
	// Work queued before the exit: functions still run (on this goroutine,
	// with the loop closing, so a registration closes its fd); tasks that
	// never started fail with ErrClosed. Whatever they schedule now finds
	// the loop exited.
	for _, it := range append(l.runq[l.head:], rest...) {
		if it.fn != nil {
			it.fn()
		} else {
			dropItem(it)
		}
	}
	l.runq, l.head = nil, 0
	l.mu.Lock()
	l.poller.close()
	l.mu.Unlock()
	l.clean = true
	close(l.done)
}
