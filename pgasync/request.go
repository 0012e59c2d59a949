package pgasync

import (
	"context"
	"errors"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/yieldio/yieldio/fdpoll"
)

// A reqKind says what a request sends and which replies it expects.
type reqKind uint8

const (
	kindQuery   reqKind = iota // extended protocol, rows kept
	kindExec                   // extended protocol (or simple without arguments), rows dropped
	kindSimple                 // one simple-protocol Query message, rows dropped (BEGIN, COMMIT, LISTEN)
	kindPrepare                // Parse + Describe + Sync of a cached statement (internal)
	kindClose                  // Close + Sync of an evicted statement (internal)
	kindCopyIn                 // COPY ... FROM STDIN as a simple Query
	kindCopyOut                // COPY ... TO STDOUT as a simple Query
)

// A request is one unit of the pipeline: the messages of one query up to and
// including its Sync, and the replies up to the matching ReadyForQuery.
// Everything but the futures is touched only on the request's loop.
type request struct {
	kind   reqKind
	sql    string
	args   []any
	ctx    context.Context
	ls     *loopState
	target *conn    // a pinned connection (transaction, COPY, LISTEN); nil: any shared one
	tx     *txState // the transaction of a statement made through a Tx
	conn   *conn    // where it was sent
	stmt   *stmt    // the cached statement it binds, or waits for, or prepares

	simple     bool // sent as a simple Query message
	sent       bool // its messages were written
	finished   bool // its ReadyForQuery arrived, or it failed
	cancelled  bool // its context ended: the reply is dropped
	wantCancel bool // send a CancelRequest when it reaches the head of the pipeline
	retried    bool
	described  bool // its RowDescription or NoData arrived (ExecModeUnnamed)
	keepFuture bool // the context's end cancels on the server but leaves the future to the reply (COPY)

	stopWatch func() bool // undoes the context watch

	rows *Rows // kindQuery: the result being read
	tag  pgconn.CommandTag
	err  error

	// Exactly one of the futures is set, or onDone for internal requests.
	rowsF  *fdpoll.Future[*Rows]
	rowF   *fdpoll.Future[*Row]
	row    *Row
	tagF   *fdpoll.Future[pgconn.CommandTag]
	onDone func(*request)

	// COPY.
	copyStarted *fdpoll.Future[struct{}] // CopyInResponse arrived (or the request ended)
	copyOut     io.Writer
	copyErr     error // the writer's error; the rest of the data is dropped
}

// queryReq, rowReq and execReq allocate a request with its future (and
// result) in one object.
type queryReq struct {
	request
	f    fdpoll.Future[*Rows]
	rows Rows
}

type rowReq struct {
	request
	f   fdpoll.Future[*Row]
	row Row
}

type execReq struct {
	request
	f fdpoll.Future[pgconn.CommandTag]
}

func newQueryReq(ctx context.Context, sql string, args []any) *request {
	q := &queryReq{}
	r := &q.request
	r.kind, r.ctx, r.sql, r.args = kindQuery, ctx, sql, args
	r.rows, r.rowsF = &q.rows, &q.f
	return r
}

func newRowReq(ctx context.Context, sql string, args []any) *request {
	q := &rowReq{}
	r := &q.request
	r.kind, r.ctx, r.sql, r.args = kindQuery, ctx, sql, args
	r.row, r.rowF = &q.row, &q.f
	r.rows = &q.row.rows
	return r
}

func newExecReq(ctx context.Context, kind reqKind, sql string, args []any) *request {
	q := &execReq{}
	r := &q.request
	r.kind, r.ctx, r.sql, r.args = kind, ctx, sql, args
	r.tagF = &q.f
	return r
}

// failFuture completes the caller's future with err at once; it may be
// called from any goroutine (a context's AfterFunc). The result, if it
// arrives later, is dropped.
func (r *request) failFuture(err error) {
	switch {
	case r.rowsF != nil:
		r.rowsF.Complete(nil, err)
	case r.rowF != nil:
		r.rowF.Complete(&Row{err: err}, err)
	case r.tagF != nil:
		r.tagF.Complete(pgconn.CommandTag{}, err)
	}
}

// watch arranges for r's context ending to fail its future and cancel it
// on the server. It runs once r.ls is known.
func (r *request) watch() {
	r.stopWatch = fdpoll.OnDone(r.ctx, r.ctxDone)
}

// ctxDone runs when r's context ends, on the goroutine that ended it (or
// one of its own); it must not block.
func (r *request) ctxDone() {
	if !r.keepFuture {
		r.failFuture(r.ctx.Err())
	}
	r.ls.loop.Post(r.cancelOnLoop)
}

// cancelOnLoop handles a request whose context ended: one not sent yet is
// dropped when its turn comes; one on the wire is cancelled on the server
// once it is the one executing (a CancelRequest stops whatever the backend
// runs, and the requests ahead in the pipeline belong to other callers).
func (r *request) cancelOnLoop() {
	if r.finished || r.cancelled {
		return
	}
	r.cancelled = true
	if !r.sent {
		return
	}
	c := r.conn
	if c.dead {
		return
	}
	if c.head() == r {
		c.sendCancel()
	} else {
		r.wantCancel = true // a pinned connection holds new requests meanwhile: see conn.held
	}
}

// stop undoes the context watch.
func (r *request) stop() {
	if r.stopWatch != nil {
		r.stopWatch()
		r.stopWatch = nil
	}
}

// finish completes r with its result or error. It runs on the loop.
func (r *request) finish() {
	if r.finished {
		return
	}
	r.finished = true
	r.stop()
	if r.copyStarted != nil {
		r.copyStarted.Complete(struct{}{}, nil)
	}
	err := r.err
	switch {
	case r.rowsF != nil:
		if err != nil {
			r.rowsF.Complete(nil, err)
		} else if !r.rowsF.Done() {
			r.rows.tag = r.tag
			r.rowsF.Complete(r.rows, nil)
		}
	case r.rowF != nil:
		if !r.rowF.Done() {
			r.row.err = err
			r.row.rows.tag = r.tag
			r.rowF.Complete(r.row, err)
		}
	case r.tagF != nil:
		r.tagF.Complete(r.tag, err)
	}
	if r.onDone != nil {
		r.onDone(r)
	}
}

// fail completes r with err.
func (r *request) fail(err error) {
	r.err = err
	r.finish()
}

// resetForRetry readies r to be sent again after a failure that proves it
// had no effect.
func (r *request) resetForRetry() {
	r.retried = true
	r.sent, r.conn, r.stmt, r.simple, r.err, r.wantCancel, r.described = false, nil, nil, false, nil, false, false
	r.tag = pgconn.CommandTag{}
	if r.rows != nil {
		r.rows.reset()
	}
}

// pgError decodes an ErrorResponse or NoticeResponse body.
func pgError(body []byte) (*pgconn.PgError, error) {
	var msg pgproto3.ErrorResponse
	if err := msg.Decode(body); err != nil {
		return nil, protocolErrorf("malformed ErrorResponse: %v", err)
	}
	return pgconn.ErrorResponseToPgError(&msg), nil
}

// sqlState returns err's SQLSTATE if it is a server error.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// onMessage handles one reply for r, the request at the head of c's
// pipeline. A returned error is a protocol violation that breaks c.
func (r *request) onMessage(c *conn, typ byte, body []byte) error {
	switch typ {
	case '1', '2', '3': // ParseComplete, BindComplete, CloseComplete
	case 't': // ParameterDescription
		if r.kind != kindPrepare {
			return protocolErrorf("unexpected ParameterDescription")
		}
		oids, err := decodeParameterDescription(body)
		if err != nil {
			return err
		}
		r.stmt.paramOIDs = oids
	case 'T': // RowDescription
		fields, err := decodeRowDescription(body)
		if err != nil {
			return err
		}
		switch {
		case r.kind == kindPrepare:
			r.stmt.setFields(fields, c.ls.types)
		case r.simple:
			// Rows of the simple protocol are dropped.
		case r.described || r.stmt != nil:
			// A bound cached statement gets no description; an unnamed
			// one exactly one, before its rows: another would change
			// the columns under the rows already read.
			return protocolErrorf("unexpected RowDescription")
		default:
			r.described = true
			if r.rows != nil {
				r.rows.fields = fields
			}
		}
	case 'n': // NoData
		if r.kind != kindPrepare && !r.simple {
			if r.described || r.stmt != nil {
				return protocolErrorf("unexpected NoData")
			}
			r.described = true
		}
	case 'D': // DataRow
		if r.rows == nil || r.simple || r.cancelled {
			return checkDataRow(body, -1)
		}
		return r.rows.addRow(body)
	case 'C': // CommandComplete
		tag, err := commandTag(body, &c.lastTag)
		if err != nil {
			return err
		}
		r.tag = tag
	case 'I': // EmptyQueryResponse
	case 'E':
		pe, err := pgError(body)
		if err != nil {
			return err
		}
		if pe.Severity == "FATAL" || pe.Severity == "PANIC" {
			// The server is closing the connection (shutdown,
			// pg_terminate_backend): everything pending on it is lost.
			c.fail(c.lost("read", pe))
			return nil
		}
		if r.err == nil {
			r.err = pe
		}
	case 'G': // CopyInResponse
		if r.kind != kindCopyIn {
			// The server now waits for data that no one will send, and
			// would read the next pipelined query as a broken COPY.
			r.fail(ErrCopyStatement)
			return protocolErrorf("COPY FROM STDIN run through Query or Exec")
		}
		if r.copyStarted.Done() {
			// A second COPY FROM STDIN in the statement: the input went
			// to the first. Fail this one rather than leave the server
			// waiting for data no one sends.
			if r.err == nil {
				r.err = errSecondCopyIn
			}
			c.write(appendCopyFail(nil, errSecondCopyIn.Error()))
			return nil
		}
		r.copyStarted.Complete(struct{}{}, nil)
	case 'H': // CopyOutResponse
		if r.kind != kindCopyOut && r.err == nil {
			r.err = ErrCopyStatement // its data is dropped below
		}
	case 'd': // CopyData
		if r.kind == kindCopyOut && r.err == nil && r.copyErr == nil && !r.cancelled {
			if _, err := r.copyOut.Write(body); err != nil {
				// Stop the server and drop the rest of the data.
				r.copyErr = err
				c.sendCancel()
			}
		}
	case 'c': // CopyDone
	default:
		return protocolErrorf("unexpected message %s", msgName(typ))
	}
	return nil
}
