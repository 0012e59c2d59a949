package fdpoll

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
)

// A Group is a set of loops that share work: clients and servers keep state
// per loop so a task never crosses threads to do I/O. Default returns the
// process-wide group; NewGroup makes a private one, which its owner closes.
type Group struct {
	loops   []*Loop
	next    atomic.Uint32
	workers *workerPool

	closeOnce sync.Once
	closed    atomic.Bool
}

// registry lists every running loop, so that a goroutine holding no task
// context can still find out whether it is a loop (which must not block) or
// not. It is copied on write and read without locks.
var (
	registry   atomic.Pointer[[]*Loop]
	registryMu sync.Mutex
)

func init() { registry.Store(new([]*Loop)) }

func registerLoops(ls []*Loop, add bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	old := *registry.Load()
	next := make([]*Loop, 0, len(old)+len(ls))
	for _, l := range old {
		keep := true
		for _, x := range ls {
			if l == x {
				keep = false
			}
		}
		if keep {
			next = append(next, l)
		}
	}
	if add {
		next = append(next, ls...)
	}
	registry.Store(&next)
}

// NewGroup starts a group of n loops, each on its own goroutine; n <= 0
// means runtime.GOMAXPROCS(0). The caller must Close it.
func NewGroup(n int) (*Group, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	g := &Group{loops: make([]*Loop, n)}
	for i := range g.loops {
		l, err := newLoop(g, i)
		if err != nil {
			for _, l := range g.loops[:i] {
				l.poller.close()
			}
			return nil, err
		}
		g.loops[i] = l
	}
	g.workers = newWorkerPool(DefaultMaxWorkers)
	registerLoops(g.loops, true)
	for _, l := range g.loops {
		go l.serve()
	}
	return g, nil
}

var defaultGroup struct {
	once sync.Once
	g    *Group
	err  error
}

// Default returns the process-wide group of GOMAXPROCS loops, starting it on
// first use. It is never closed. It panics if the loops cannot be created
// (the process is out of file descriptors).
func Default() *Group {
	defaultGroup.once.Do(func() {
		defaultGroup.g, defaultGroup.err = NewGroup(0)
	})
	if defaultGroup.err != nil {
		panic(defaultGroup.err)
	}
	return defaultGroup.g
}

// Closed reports whether Close has been called on g: its loops take no new
// work (a Spawn fails with ErrClosed).
func (g *Group) Closed() bool { return g.closed.Load() }

// Len returns the number of loops in g.
func (g *Group) Len() int { return len(g.loops) }

// Loop returns the i-th loop of g.
func (g *Group) Loop(i int) *Loop { return g.loops[i] }

// Next returns a loop of g, taking them in turn.
func (g *Group) Next() *Loop {
	return g.loops[(g.next.Add(1)-1)%uint32(len(g.loops))]
}

// Spawn starts fn as a task on one of g's loops, taking them in turn. See
// Loop.Spawn.
func (g *Group) Spawn(ctx context.Context, fn func(ctx context.Context) error) *Future[struct{}] {
	return g.Next().Spawn(ctx, fn)
}

var (
	errCloseFromLoop   = errors.New("fdpoll: Group.Close called from one of the group's own loops")
	errCloseFromWorker = errors.New("fdpoll: Group.Close called from a Go function of the group")
)

// Close shuts g down and waits for it: tasks' contexts are cancelled and
// their pending waits fail with ErrClosed, every connection and watched fd is
// closed, the loops exit once their tasks have returned, and the worker pool
// behind Go stops after its running functions return. Close returns when no
// goroutine, fd or timer of g is left. It must not be called from one of g's
// own loops or Go functions. Connections are closed at once: output the
// socket could not take yet is discarded. Closing twice is a no-op.
func (g *Group) Close() error {
	if _, l := current(nil); l != nil && l.group == g {
		return errCloseFromLoop
	}
	if g.workers.isWorker(getg()) {
		return errCloseFromWorker // it would wait for itself
	}
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		for _, l := range g.loops {
			l.Post(l.beginClose)
		}
		for _, l := range g.loops {
			<-l.done
		}
		registerLoops(g.loops, false)
		g.workers.close()
	})
	return nil
}
