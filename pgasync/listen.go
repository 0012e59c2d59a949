package pgasync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/yieldio/yieldio/fdpoll"
)

// A Notification is a message sent with NOTIFY (or pg_notify).
type Notification struct {
	Channel string
	Payload string
	PID     uint32 // the backend that sent it
}

// ErrNotificationsDropped is returned (wrapped, with the count) by
// Listener.Next when notifications were dropped because the listener's
// queue was full; the ones after the gap follow.
var ErrNotificationsDropped = errors.New("pgasync: notifications dropped: listener queue full")

// ListenerQueueSize is how many notifications a Listener keeps for a reader
// that does not keep up; beyond it the oldest are dropped.
const ListenerQueueSize = 4096

// listenState is a loop's LISTEN connection, shared by all the loop's
// listeners: one LISTEN per channel, however many listeners it has.
type listenState struct {
	ls       *loopState
	c        *conn
	ready    *fdpoll.Future[struct{}] // the connection is open (or failed)
	channels map[string]*channelState
	dead     bool
}

type channelState struct {
	listeners []*Listener
	ready     *fdpoll.Future[struct{}] // LISTEN done (or failed)
}

// A Listener receives the notifications of one channel. Each Listener of a
// channel gets every notification. Close it when done.
type Listener struct {
	st      *listenState
	channel string

	mu      sync.Mutex
	queue   []*Notification
	waiters []nextWaiter
	dropped int
	err     error
}

type nextWaiter struct {
	f    *fdpoll.Future[*Notification]
	stop func() bool
}

// Listen starts listening on channel (LISTEN, on a connection each loop
// keeps for its listeners) and returns a future of the Listener. A channel
// name is an identifier: it is quoted, so it is case-sensitive and may hold
// any character but NUL.
//
// If the connection breaks, every Listener on it fails (Next returns an
// error matching ErrConnLost): notifications sent meanwhile are lost, so
// the caller decides how to recover, typically by listening again and
// re-reading the state the notifications were about.
func (p *Pool) Listen(ctx context.Context, channel string) *fdpoll.Future[*Listener] {
	if ctx == nil {
		ctx = context.Background()
	}
	if channel == "" || strings.IndexByte(channel, 0) >= 0 {
		return fdpoll.Failed[*Listener](fmt.Errorf("pgasync: invalid channel name %q", channel))
	}
	if p.closed.Load() {
		return fdpoll.Failed[*Listener](ErrPoolClosed)
	}
	ls, _ := p.pick(ctx)
	return fdpoll.Call(ls.loop, ctx, func(ctx context.Context) (*Listener, error) {
		st, err := ls.listenConn(ctx)
		if err != nil {
			return nil, err
		}
		ch := st.channels[channel]
		if ch == nil {
			ch = &channelState{ready: fdpoll.NewFuture[struct{}]()}
			st.channels[channel] = ch
			_, err := awaitOn(ctx, st.c, "LISTEN "+quoteIdent(channel))
			ch.ready.Complete(struct{}{}, err)
			if err != nil {
				if st.channels[channel] == ch && len(ch.listeners) == 0 {
					delete(st.channels, channel)
				}
				return nil, err
			}
		} else if _, err := fdpoll.Await(ctx, ch.ready); err != nil {
			return nil, err
		}
		if st.dead {
			return nil, st.c.err
		}
		l := &Listener{st: st, channel: channel}
		ch.listeners = append(ch.listeners, l)
		return l, nil
	})
}

// listenConn returns the loop's LISTEN connection, opening it if needed.
// It runs in a task on the loop.
func (ls *loopState) listenConn(ctx context.Context) (*listenState, error) {
	for {
		st := ls.listen
		if st == nil {
			st = &listenState{ls: ls, ready: fdpoll.NewFuture[struct{}](), channels: make(map[string]*channelState)}
			ls.listen = st
			c, err := ls.acquire(ctx)
			if err != nil {
				ls.listen = nil
				st.ready.Complete(struct{}{}, err)
				return nil, err
			}
			st.c = c
			st.ready.Complete(struct{}{}, nil)
			return st, nil
		}
		if _, err := fdpoll.Await(ctx, st.ready); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			continue // that attempt failed: try again
		}
		if !st.dead {
			return st, nil
		}
	}
}

// notify hands a notification to the listeners of its channel.
func (ls *loopState) notify(n *Notification) {
	if ls.listen == nil {
		return
	}
	if ch := ls.listen.channels[n.Channel]; ch != nil {
		for _, l := range ch.listeners {
			l.deliver(n)
		}
	}
}

// lost fails every listener: the connection broke or the pool closed.
func (st *listenState) lost(err error) {
	if st.dead {
		return
	}
	st.dead = true
	if st.ls.listen == st {
		st.ls.listen = nil
	}
	for _, ch := range st.channels {
		for _, l := range ch.listeners {
			l.fail(err)
		}
	}
	st.channels = nil
}

// remove forgets l; the last listener of a channel UNLISTENs it, and the
// connection goes back to the pool once no channel is left.
func (st *listenState) remove(l *Listener) {
	if st.dead {
		return
	}
	ch := st.channels[l.channel]
	if ch == nil {
		return
	}
	for i, x := range ch.listeners {
		if x == l {
			ch.listeners = append(ch.listeners[:i], ch.listeners[i+1:]...)
			break
		}
	}
	if len(ch.listeners) > 0 || !ch.ready.Done() {
		return
	}
	delete(st.channels, l.channel)
	r := newExecReq(context.Background(), kindSimple, "UNLISTEN "+quoteIdent(l.channel), nil)
	r.target = st.c
	r.onDone = func(r *request) {
		// The last UNLISTEN in flight gives the connection back.
		if len(st.channels) == 0 && !st.dead && st.ls.listen == st && st.c.load() == 0 {
			st.dead = true
			st.ls.listen = nil
			st.ls.release(st.c)
		}
	}
	st.ls.submit(r)
}

// Channel returns the channel l listens on.
func (l *Listener) Channel() string { return l.channel }

// Next returns a future of the next notification. Notifications that
// arrive while nobody waits are queued (up to ListenerQueueSize). If ctx ends
// first the future fails with its error and no notification is lost.
func (l *Listener) Next(ctx context.Context) *fdpoll.Future[*Notification] {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > 0 {
		n := l.dropped
		l.dropped = 0
		return fdpoll.Failed[*Notification](fmt.Errorf("%w (%d)", ErrNotificationsDropped, n))
	}
	if len(l.queue) > 0 {
		n := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		return fdpoll.Completed(n, nil)
	}
	if l.err != nil {
		return fdpoll.Failed[*Notification](l.err)
	}
	f := fdpoll.NewFuture[*Notification]()
	w := nextWaiter{f: f}
	if ctx != nil && ctx.Done() != nil {
		w.stop = context.AfterFunc(ctx, func() {
			l.mu.Lock()
			removed := l.dropWaiter(f)
			l.mu.Unlock()
			if removed {
				f.Complete(nil, ctx.Err())
			}
		})
	}
	l.waiters = append(l.waiters, w)
	return f
}

func (l *Listener) dropWaiter(f *fdpoll.Future[*Notification]) bool {
	for i, w := range l.waiters {
		if w.f == f {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// deliver gives n to the first waiting Next, or queues it.
func (l *Listener) deliver(n *Notification) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	if len(l.waiters) > 0 {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.mu.Unlock()
		if w.stop != nil {
			w.stop()
		}
		w.f.Complete(n, nil)
		return
	}
	if len(l.queue) >= ListenerQueueSize {
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.dropped++
	}
	l.queue = append(l.queue, n)
	l.mu.Unlock()
}

// fail ends the listener with err: pending and later Next calls fail.
func (l *Listener) fail(err error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = err
	waiters := l.waiters
	l.waiters = nil
	l.mu.Unlock()
	for _, w := range waiters {
		if w.stop != nil {
			w.stop()
		}
		w.f.Complete(nil, err)
	}
}

// Close stops the listener: pending and later Next calls fail with
// ErrListenerClosed (queued notifications are dropped), and the channel is
// UNLISTENed once its last listener of the loop closes. It does not wait.
func (l *Listener) Close() error {
	l.mu.Lock()
	closed := l.err == ErrListenerClosed
	l.queue = nil
	l.mu.Unlock()
	if closed {
		return nil
	}
	l.fail(ErrListenerClosed)
	l.st.ls.loop.Post(func() { l.st.remove(l) })
	return nil
}

// quoteIdent quotes s as an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
