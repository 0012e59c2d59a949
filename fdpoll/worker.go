package fdpoll

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
)

// DefaultMaxWorkers is how many goroutines each group's worker pool runs at
// most; Go queues work beyond that.
const DefaultMaxWorkers = 128

// Go runs fn on a worker goroutine and returns a future of its result. It is
// the escape hatch for code that blocks (a file read, a cgo call, a library
// without a non-blocking form): a loop must never block, so such code runs
// off-loop while the calling task awaits the future.
//
// The worker pool belongs to the group of the calling task's loop (the
// default group when called outside any task) and runs at most
// DefaultMaxWorkers functions at once. fn's context is ctx, also cancelled
// when the group closes. If ctx is done before fn starts, fn does not run and
// the future fails with ctx's error. A panic in fn fails the future with a
// *PanicError.
func Go[T any](ctx context.Context, fn func(ctx context.Context) (T, error)) *Future[T] {
	if ctx == nil {
		ctx = context.Background()
	}
	l := LoopOf(ctx)
	if l == nil {
		l = callerLoop()
	}
	var pool *workerPool
	if l != nil {
		pool = l.group.workers
	} else {
		pool = Default().workers
	}
	f := NewFuture[T]()
	job := func() {
		if err := ctx.Err(); err != nil {
			f.Complete(*new(T), err)
			return
		}
		if pool.ctx.Err() != nil {
			f.Complete(*new(T), ErrClosed)
			return
		}
		runCtx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(pool.ctx, cancel)
		defer func() {
			stop()
			cancel()
			if r := recover(); r != nil {
				f.Complete(*new(T), &PanicError{Value: r, Stack: debug.Stack()})
			}
		}()
		v, err := fn(runCtx)
		f.Complete(v, err)
	}
	if !pool.submit(job) {
		f.Complete(*new(T), ErrClosed)
	}
	return f
}

var errPoolClosed = errors.New("fdpoll: worker pool closed")

// A workerPool runs functions on a bounded set of goroutines, started on
// demand and kept until the pool closes.
type workerPool struct {
	mu     sync.Mutex
	cond   sync.Cond
	queue  []func()
	idle   int
	n, max int
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelCauseFunc
	gs     map[uintptr]bool // the workers' goroutine identities
}

func newWorkerPool(max int) *workerPool {
	p := &workerPool{max: max, gs: map[uintptr]bool{}}
	p.cond.L = &p.mu
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	return p
}

// submit queues fn; it never blocks. It reports false once the pool closed.
func (p *workerPool) submit(fn func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.queue = append(p.queue, fn)
	switch {
	case p.idle > 0:
		p.cond.Signal()
	case p.n < p.max:
		p.n++
		p.wg.Add(1)
		go p.work()
	}
	return true
}

func (p *workerPool) work() {
	defer p.wg.Done()
	g := getg()
	p.mu.Lock()
	p.gs[g] = true
	for {
		for len(p.queue) == 0 {
			if p.closed {
				p.n--
				delete(p.gs, g)
				p.mu.Unlock()
				return
			}
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		fn := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.mu.Unlock()
		fn()
		p.mu.Lock()
	}
}

// isWorker reports whether g is one of p's workers.
func (p *workerPool) isWorker(g uintptr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gs[g]
}

// close cancels the context of running functions, lets queued ones fail
// fast, and waits for every worker to exit.
func (p *workerPool) close() {
	p.mu.Lock()
	p.closed = true
	p.cancel(errPoolClosed)
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
