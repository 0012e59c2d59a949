package pgasync

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/yieldio/yieldio/fdpoll"
)

// A loopState is a pool's part on one loop: its connections, its type map,
// its dialling and backoff state. Apart from the inbox it is touched only on
// the loop, so it needs no locks.
type loopState struct {
	p     *Pool
	loop  *fdpoll.Loop
	types *pgtype.Map

	shared   []*conn    // pipelined connections
	dialing  bool       // a shared connection is being opened
	dialWait []*request // requests waiting for the first shared connection
	failures int        // consecutive failed connection attempts
	retryAt  time.Time  // no new attempt before this
	lastErr  error      // the last attempt's error

	pinnedN    int // pinned connections open or opening
	pinnedIdle []*conn
	pinWait    []*fdpoll.Future[*conn]

	conns   map[*conn]struct{} // every open connection
	listen  *listenState
	closing bool

	// Requests from goroutines off the loop, posted in batches.
	mu     sync.Mutex
	inbox  []*request
	spare  []*request
	posted bool
	shut   bool
	drain  func()
}

func newLoopState(p *Pool, l *fdpoll.Loop) *loopState {
	ls := &loopState{p: p, loop: l, types: p.newTypeMap(), conns: make(map[*conn]struct{})}
	ls.drain = ls.drainInbox
	return ls
}

// enqueue hands r to the loop from another goroutine. Requests arriving
// together are posted together: one wake-up of the loop for the batch.
func (ls *loopState) enqueue(r *request) {
	ls.mu.Lock()
	if ls.shut {
		ls.mu.Unlock()
		r.failFuture(ErrPoolClosed)
		r.stop()
		return
	}
	ls.inbox = append(ls.inbox, r)
	post := !ls.posted
	ls.posted = true
	ls.mu.Unlock()
	if post {
		ls.loop.Post(ls.drain)
	}
}

func (ls *loopState) drainInbox() {
	ls.mu.Lock()
	batch := ls.inbox
	ls.inbox = ls.spare[:0]
	ls.posted = false
	ls.mu.Unlock()
	for i, r := range batch {
		batch[i] = nil
		ls.submit(r)
	}
	ls.spare = batch[:0]
}

// submit sends r on a connection of this loop: its pinned one, else the
// least loaded shared one, opening one if there is none (or all are busy
// and fewer than ConnsPerLoop are open).
func (ls *loopState) submit(r *request) {
	if r.ls != ls {
		r.ls = ls // written before a context watch can read it
	}
	if r.rows != nil {
		r.rows.ls = ls
	}
	switch {
	case ls.closing:
		r.fail(ErrPoolClosed)
		return
	case r.cancelled:
		r.fail(r.ctx.Err())
		return
	}
	if r.target != nil {
		if r.tx != nil && r.tx.ended {
			r.fail(ErrTxDone)
			return
		}
		r.target.submit(r)
		return
	}
	c, all := ls.pickShared()
	if c == nil {
		if !ls.dialing && time.Now().Before(ls.retryAt) {
			r.fail(ls.lastErr)
			return
		}
		ls.dialWait = append(ls.dialWait, r)
		ls.dialShared()
		return
	}
	c.submit(r)
	if all && len(ls.shared) < ls.p.cfg.ConnsPerLoop {
		ls.dialShared()
	}
}

// pickShared chooses the shared connection for a request: the first one
// (in the order they were opened) that is not busy, so that requests
// gather on as few connections as possible and each read and write
// syscall carries as many of them as it can; when all are busy, the least
// loaded. all reports that every connection is busy (another would help).
func (ls *loopState) pickShared() (c *conn, all bool) {
	if len(ls.shared) == 0 {
		return nil, true
	}
	now := time.Now()
	var least *conn
	for _, s := range ls.shared {
		if !s.busy(now) {
			return s, false
		}
		if least == nil || s.load() < least.load() {
			least = s
		}
	}
	return least, true
}

// dialShared opens another shared connection in the background, unless one
// is being opened or the backoff says not yet.
func (ls *loopState) dialShared() {
	if ls.dialing || ls.closing || time.Now().Before(ls.retryAt) {
		return
	}
	ls.dialing = true
	ls.loop.Spawn(ls.p.ctx, func(ctx context.Context) error {
		c, err := ls.connect(ctx, roleShared)
		ls.dialing = false
		waiting := ls.dialWait
		ls.dialWait = nil
		if err != nil {
			ls.noteFailure(err)
			for _, r := range waiting {
				if len(ls.shared) > 0 {
					ls.submit(r)
				} else {
					r.fail(err)
				}
			}
			return nil
		}
		ls.failures = 0
		if ls.closing {
			c.close(ErrPoolClosed)
		} else {
			ls.shared = append(ls.shared, c)
		}
		for _, r := range waiting {
			ls.submit(r)
		}
		return nil
	})
}

// noteFailure starts or extends the backoff after a failed attempt.
func (ls *loopState) noteFailure(err error) {
	cfg := ls.p.cfg
	ls.failures++
	delay := cfg.MinReconnectDelay << min(ls.failures-1, 20)
	if delay > cfg.MaxReconnectDelay || delay <= 0 {
		delay = cfg.MaxReconnectDelay
	}
	ls.retryAt = time.Now().Add(delay)
	ls.lastErr = err
}

// acquire returns a pinned connection: an idle one, a new one, or, at the
// MaxPinnedConnsPerLoop limit, the next one released. It runs in a task on
// the loop.
func (ls *loopState) acquire(ctx context.Context) (*conn, error) {
	for {
		if ls.closing {
			return nil, ErrPoolClosed
		}
		if n := len(ls.pinnedIdle); n > 0 {
			c := ls.pinnedIdle[n-1]
			ls.pinnedIdle[n-1] = nil
			ls.pinnedIdle = ls.pinnedIdle[:n-1]
			if !c.dead {
				return c, nil
			}
			continue
		}
		if ls.pinnedN < ls.p.cfg.MaxPinnedConnsPerLoop {
			if time.Now().Before(ls.retryAt) {
				return nil, ls.lastErr
			}
			ls.pinnedN++
			c, err := ls.connect(ctx, rolePinned)
			if err != nil {
				ls.pinnedN--
				if ctx.Err() == nil {
					// The server failed, not the caller who gave up:
					// only then back off.
					ls.noteFailure(err)
				}
				ls.wakePinWaiter()
				return nil, err
			}
			ls.failures = 0
			if ls.closing {
				c.close(ErrPoolClosed)
				return nil, ErrPoolClosed
			}
			return c, nil
		}
		f := fdpoll.NewFuture[*conn]()
		ls.pinWait = append(ls.pinWait, f)
		c, err := fdpoll.Await(ctx, f)
		if err != nil {
			if !f.Complete(nil, err) {
				// Handed a connection just as ctx ended: give it back.
				if c, _ := f.Result(); c != nil {
					ls.release(c)
				}
			}
			ls.dropPinWaiter(f)
			return nil, err
		}
		if c != nil {
			return c, nil
		}
		// Woken because a slot freed up: go round again.
	}
}

// release returns a pinned connection. One that is broken, busy, or not
// idle on the server (a transaction left open) is closed instead.
func (ls *loopState) release(c *conn) {
	if c.dead {
		return
	}
	if ls.closing || c.load() > 0 || c.txStatus != 'I' || c.writing {
		c.close(ErrPoolClosed)
		return
	}
	for len(ls.pinWait) > 0 {
		f := ls.pinWait[0]
		ls.pinWait = ls.pinWait[1:]
		if f.Complete(c, nil) {
			return
		}
	}
	ls.pinnedIdle = append(ls.pinnedIdle, c)
}

// wakePinWaiter tells one waiter that a pinned slot is free to dial.
func (ls *loopState) wakePinWaiter() {
	for len(ls.pinWait) > 0 {
		f := ls.pinWait[0]
		ls.pinWait = ls.pinWait[1:]
		if f.Complete(nil, nil) {
			return
		}
	}
}

func (ls *loopState) dropPinWaiter(f *fdpoll.Future[*conn]) {
	for i, g := range ls.pinWait {
		if g == f {
			ls.pinWait = append(ls.pinWait[:i], ls.pinWait[i+1:]...)
			return
		}
	}
}

// connGone forgets a connection that broke or was closed.
func (ls *loopState) connGone(c *conn) {
	delete(ls.conns, c)
	switch c.role {
	case roleShared:
		for i, s := range ls.shared {
			if s == c {
				ls.shared = append(ls.shared[:i], ls.shared[i+1:]...)
				break
			}
		}
	case rolePinned:
		ls.pinnedN--
		for i, s := range ls.pinnedIdle {
			if s == c {
				ls.pinnedIdle = append(ls.pinnedIdle[:i], ls.pinnedIdle[i+1:]...)
				break
			}
		}
		if ls.listen != nil && ls.listen.c == c {
			ls.listen.lost(c.err)
		}
		ls.wakePinWaiter()
	}
}

// shutdown closes every connection of the loop; it runs on the loop when
// the pool closes.
func (ls *loopState) shutdown() {
	ls.closing = true
	ls.mu.Lock()
	ls.shut = true
	inbox := ls.inbox
	ls.inbox = nil
	ls.mu.Unlock()
	for _, r := range inbox {
		r.fail(ErrPoolClosed)
	}
	waiting := ls.dialWait
	ls.dialWait = nil
	for _, r := range waiting {
		r.fail(ErrPoolClosed)
	}
	for _, f := range ls.pinWait {
		f.Complete(nil, ErrPoolClosed)
	}
	ls.pinWait = nil
	if ls.listen != nil {
		ls.listen.lost(ErrPoolClosed)
	}
	for c := range ls.conns {
		c.close(ErrPoolClosed)
	}
}
