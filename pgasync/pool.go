package pgasync

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/yieldio/yieldio/fdpoll"
)

// A Pool is a PostgreSQL client shared by every task and goroutine of a
// program. It keeps connections per loop of its fdpoll.Group: a query made
// in a task goes onto a connection of that task's loop, pipelined with the
// queries of the loop's other tasks; a query made from any other goroutine
// is handed to a loop, and awaiting its future blocks that goroutine.
//
// Every method that talks to the server returns a future at once; await it
// with fdpoll.Await. A Pool is safe for concurrent use.
type Pool struct {
	cfg    *Config
	group  *fdpoll.Group
	loops  []*loopState
	next   atomic.Uint32
	closed atomic.Bool
	ctx    context.Context // cancelled by Close: ends connection attempts
	cancel context.CancelFunc
	maps   sync.Pool // *pgtype.Map for scanning off the loops

	lowWaterDelay time.Duration // see conn.setLowWater; tests change it
}

// Open returns a pool for dsn (see ParseConfig). It does not connect: each
// loop opens its connections on first use.
func Open(dsn string) (*Pool, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return OpenConfig(cfg)
}

// OpenConfig returns a pool for cfg, which it copies. Like Open, it does not
// connect.
func OpenConfig(cfg *Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: cfg, group: cfg.Group, lowWaterDelay: lowWaterDelay}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.maps.New = func() any { return p.newTypeMap() }
	p.loops = make([]*loopState, p.group.Len())
	for i := range p.loops {
		p.loops[i] = newLoopState(p, p.group.Loop(i))
	}
	return p, nil
}

func (p *Pool) newTypeMap() *pgtype.Map {
	m := pgtype.NewMap()
	if p.cfg.ConfigureTypeMap != nil {
		p.cfg.ConfigureTypeMap(m)
	}
	return m
}

// Config returns a copy of the pool's configuration, defaults filled in.
func (p *Pool) Config() *Config {
	c := *p.cfg
	c.Conn = p.cfg.Conn.Copy()
	return &c
}

// local returns the pool's state for the loop the caller runs on, or nil
// when the caller is not on one of the pool's loops.
func (p *Pool) local(ctx context.Context) *loopState {
	if l := fdpoll.LoopOf(ctx); l != nil && l.Group() == p.group && l.Current() {
		return p.loops[l.Index()]
	}
	for _, ls := range p.loops {
		if ls.loop.Current() {
			return ls
		}
	}
	return nil
}

// pick returns the state of the caller's loop, or of the next loop in turn.
func (p *Pool) pick(ctx context.Context) (ls *loopState, onLoop bool) {
	if ls := p.local(ctx); ls != nil {
		return ls, true
	}
	return p.loops[int(p.next.Add(1)-1)%len(p.loops)], false
}

// dispatch starts r: on the caller's loop directly, else through the inbox
// of a loop (or of its pinned connection's loop).
func (p *Pool) dispatch(r *request, ls *loopState, onLoop bool) {
	if ctx := r.ctx; ctx == nil {
		r.ctx = context.Background()
	} else if err := ctx.Err(); err != nil {
		r.failFuture(err)
		return
	}
	if p.closed.Load() {
		r.failFuture(ErrPoolClosed)
		return
	}
	r.ls = ls
	r.watch()
	if onLoop {
		ls.submit(r)
	} else {
		ls.enqueue(r)
	}
}

func (p *Pool) start(r *request) {
	if r.ctx == nil {
		r.ctx = context.Background() // pick looks into it
	}
	ls, onLoop := p.pick(r.ctx)
	p.dispatch(r, ls, onLoop)
}

// Query sends sql with args and returns a future of its whole result: the
// rows are read into the Rows before the future completes, so a slow
// consumer never holds up the connection's pipeline. A server error fails
// the future with a *pgconn.PgError.
func (p *Pool) Query(ctx context.Context, sql string, args ...any) *fdpoll.Future[*Rows] {
	r := newQueryReq(ctx, sql, args)
	p.start(r)
	return r.rowsF
}

// QueryRow is Query for at most one row: the future's Row scans the first
// row, or returns ErrNoRows. On error the future fails and its Row (never
// nil) returns the same error from Scan.
func (p *Pool) QueryRow(ctx context.Context, sql string, args ...any) *fdpoll.Future[*Row] {
	r := newRowReq(ctx, sql, args)
	p.start(r)
	return r.rowF
}

// Exec runs sql with args, dropping any rows, and returns a future of its
// command tag. Without arguments it uses the simple protocol, so sql may
// hold several statements separated by semicolons.
func (p *Pool) Exec(ctx context.Context, sql string, args ...any) *fdpoll.Future[pgconn.CommandTag] {
	r := newExecReq(ctx, kindExec, sql, args)
	p.start(r)
	return r.tagF
}

// Close closes every connection of the pool. Requests still pending fail
// with ErrPoolClosed, open transactions are rolled back by the server, and
// later calls fail with ErrPoolClosed. Called outside the pool's loops it
// waits until the connections are closed. The pool's Group must not be
// closed before the pool.
func (p *Pool) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.cancel()
	fs := make([]*fdpoll.Future[struct{}], len(p.loops))
	for i, ls := range p.loops {
		fs[i] = fdpoll.Call(ls.loop, context.Background(), func(context.Context) (struct{}, error) {
			ls.shutdown()
			return struct{}{}, nil
		})
	}
	if p.local(context.Background()) == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, f := range fs {
			fdpoll.Await(ctx, f)
		}
	}
	return nil
}
