package pgasync

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
)

// TxOptions are the characteristics of a transaction; the zero value is
// the server's default (usually READ COMMITTED, READ WRITE).
type TxOptions struct {
	IsoLevel   string // "serializable", "repeatable read", "read committed", "read uncommitted", or ""
	ReadOnly   bool
	Deferrable bool
}

func (o TxOptions) beginSQL() string {
	var b strings.Builder
	b.WriteString("BEGIN")
	if o.IsoLevel != "" {
		b.WriteString(" ISOLATION LEVEL " + strings.ToUpper(o.IsoLevel))
	}
	if o.ReadOnly {
		b.WriteString(" READ ONLY")
	}
	if o.Deferrable {
		b.WriteString(" DEFERRABLE")
	}
	return b.String()
}

var validIsoLevels = map[string]bool{
	"": true, "serializable": true, "repeatable read": true, "read committed": true, "read uncommitted": true,
}

// A Tx is a transaction. It holds a connection of its own from Begin until
// Commit or Rollback; its queries are pipelined on that connection in the
// order they are made. A Tx is safe for concurrent use, but its statements
// then run in no particular order.
//
// A transaction must end with Commit or Rollback. One that is abandoned is
// rolled back when the context given to Begin ends: a task's context ends
// when the task returns, a net/http request's when the handler returns. As
// a last resort, a Tx that becomes garbage is rolled back when the garbage
// collector finds it (no sooner, and later than one might hope: keep to
// Commit, Rollback and contexts that end).
type Tx struct {
	p  *Pool
	ls *loopState
	c  *conn
	st *txState
}

// txState is what the abandonment hooks need, without the Tx itself (a
// cleanup must not keep its object alive).
type txState struct {
	done    atomic.Bool
	ended   bool // on the loop: COMMIT or ROLLBACK submitted; later statements fail
	ls      *loopState
	c       *conn
	stopCtx func() bool
}

// Begin starts a transaction with the server's default characteristics.
func (p *Pool) Begin(ctx context.Context) *fdpoll.Future[*Tx] {
	return p.BeginTx(ctx, TxOptions{})
}

// BeginTx starts a transaction with opts.
func (p *Pool) BeginTx(ctx context.Context, opts TxOptions) *fdpoll.Future[*Tx] {
	if ctx == nil {
		ctx = context.Background()
	}
	if p.closed.Load() {
		return fdpoll.Failed[*Tx](ErrPoolClosed)
	}
	if !validIsoLevels[strings.ToLower(opts.IsoLevel)] {
		return fdpoll.Failed[*Tx](fmt.Errorf("pgasync: unknown isolation level %q", opts.IsoLevel))
	}
	ls, _ := p.pick(ctx)
	return fdpoll.Call(ls.loop, ctx, func(tctx context.Context) (*Tx, error) {
		c, err := ls.acquire(tctx)
		if err != nil {
			return nil, err
		}
		if _, err := awaitOn(tctx, c, opts.beginSQL()); err != nil {
			ls.release(c)
			return nil, err
		}
		st := &txState{ls: ls, c: c}
		st.stopCtx = context.AfterFunc(ctx, func() { ls.loop.Post(st.abandon) })
		tx := &Tx{p: p, ls: ls, c: c, st: st}
		runtime.AddCleanup(tx, func(st *txState) { st.ls.loop.Post(st.abandon) }, st)
		return tx, nil
	})
}

// awaitOn runs a simple statement on a pinned connection and waits for it.
// It runs in a task on the connection's loop. With ctx already ended it
// sends nothing: a COMMIT must not go out for a caller told it failed.
func awaitOn(ctx context.Context, c *conn, sql string) (pgconn.CommandTag, error) {
	if err := ctx.Err(); err != nil {
		return pgconn.CommandTag{}, err
	}
	r := newExecReq(ctx, kindSimple, sql, nil)
	r.target = c
	c.ls.submit(r)
	return fdpoll.Await(ctx, r.tagF)
}

// abandon rolls back a transaction nobody ended. It runs on the loop.
func (st *txState) abandon() {
	if !st.done.CompareAndSwap(false, true) {
		return
	}
	st.ended = true
	r := newExecReq(context.Background(), kindSimple, "ROLLBACK", nil)
	r.target = st.c
	r.onDone = func(*request) { st.ls.release(st.c) }
	st.ls.submit(r)
}

// start sends a request of the transaction.
func (tx *Tx) start(r *request) {
	if tx.st.done.Load() {
		r.failFuture(ErrTxDone)
		return
	}
	r.target, r.tx = tx.c, tx.st
	tx.p.dispatch(r, tx.ls, tx.ls.loop.Current())
}

// Query is Pool.Query inside the transaction.
func (tx *Tx) Query(ctx context.Context, sql string, args ...any) *fdpoll.Future[*Rows] {
	r := newQueryReq(ctx, sql, args)
	tx.start(r)
	return r.rowsF
}

// QueryRow is Pool.QueryRow inside the transaction.
func (tx *Tx) QueryRow(ctx context.Context, sql string, args ...any) *fdpoll.Future[*Row] {
	r := newRowReq(ctx, sql, args)
	tx.start(r)
	return r.rowF
}

// Exec is Pool.Exec inside the transaction.
func (tx *Tx) Exec(ctx context.Context, sql string, args ...any) *fdpoll.Future[pgconn.CommandTag] {
	r := newExecReq(ctx, kindExec, sql, args)
	tx.start(r)
	return r.tagF
}

// CopyFrom is Pool.CopyFrom inside the transaction.
func (tx *Tx) CopyFrom(ctx context.Context, sql string, r io.Reader) *fdpoll.Future[int64] {
	if tx.st.done.Load() {
		return fdpoll.Failed[int64](ErrTxDone)
	}
	return fdpoll.Call(tx.ls.loop, ctx, func(ctx context.Context) (int64, error) {
		if tx.st.ended {
			return 0, ErrTxDone
		}
		return copyIn(ctx, tx.c, sql, r)
	})
}

// CopyTo is Pool.CopyTo inside the transaction.
func (tx *Tx) CopyTo(ctx context.Context, sql string, w io.Writer) *fdpoll.Future[int64] {
	if tx.st.done.Load() {
		return fdpoll.Failed[int64](ErrTxDone)
	}
	return fdpoll.Call(tx.ls.loop, ctx, func(ctx context.Context) (int64, error) {
		if tx.st.ended {
			return 0, ErrTxDone
		}
		return copyOut(ctx, tx.c, sql, w)
	})
}

// Commit commits the transaction and returns its connection to the pool.
// If the transaction had failed, the server rolls it back and Commit fails
// with ErrTxRolledBack. Calls after Commit or Rollback fail with ErrTxDone.
func (tx *Tx) Commit(ctx context.Context) *fdpoll.Future[struct{}] {
	return tx.end(ctx, "COMMIT")
}

// Rollback rolls the transaction back and returns its connection to the
// pool.
func (tx *Tx) Rollback(ctx context.Context) *fdpoll.Future[struct{}] {
	return tx.end(ctx, "ROLLBACK")
}

func (tx *Tx) end(ctx context.Context, sql string) *fdpoll.Future[struct{}] {
	if !tx.st.done.CompareAndSwap(false, true) {
		return fdpoll.Failed[struct{}](ErrTxDone)
	}
	tx.st.stopCtx()
	ls, c, st := tx.ls, tx.c, tx.st
	return fdpoll.Call(ls.loop, ctx, func(ctx context.Context) (struct{}, error) {
		// Statements made before Commit, still in the loop's inbox, go
		// first; those that reach the loop from now on (made concurrently
		// with Commit) must not run after it, outside the transaction or
		// in the next owner's.
		ls.drainInbox()
		st.ended = true
		tag, err := awaitOn(ctx, c, sql)
		// A connection still busy (ctx ended first) or left in a
		// transaction is closed rather than reused.
		ls.release(c)
		if err != nil {
			return struct{}{}, err
		}
		if sql == "COMMIT" && tag.String() == "ROLLBACK" {
			return struct{}{}, ErrTxRolledBack
		}
		return struct{}{}, nil
	})
}
