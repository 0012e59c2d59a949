package pgasync

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/yieldio/yieldio/fdpoll"
)

// A connRole says how a connection is used.
type connRole uint8

const (
	roleShared connRole = iota // pipelined: requests of every task of the loop
	rolePinned                 // held by one transaction, COPY or listener at a time
)

const (
	// outputHighWater is fdpoll.Conn's documented high-water mark: a
	// Write that would take the output buffer past it waits.
	outputHighWater = 64 << 10
	// readBufferSize is a connection's read buffer; it grows for larger
	// messages and shrinks back after them.
	readBufferSize = 32 << 10
	// maxMessageSize bounds one message from the server, like the server's
	// own limit on messages it accepts.
	maxMessageSize = 1<<30 - 1
	// strayCancelWindow is how long after sending a CancelRequest on a
	// shared connection a "query cancelled" error of another request is
	// taken for that cancel having hit it, and the request is retried.
	strayCancelWindow = time.Second
	// scratchKeep is the largest encoding buffer a connection keeps.
	scratchKeep = 64 << 10
	// maxPipeline is how many requests a shared connection takes before
	// the loop spreads new ones to another connection.
	maxPipeline = 256
	// stallAfter is how long the request at the head of a shared
	// connection's pipeline may run before the loop routes new requests
	// around it (a slow query would hold up everything behind it).
	stallAfter = 2 * time.Millisecond
	// batchPending and readYield: with at least batchPending requests in
	// flight, the reader of a connection without a low-water mark (see
	// below) pauses readYield between reads (see readLoop). Measured on 2
	// cores (bench/pg): 40 µs takes read and write syscalls from about 1
	// to 0.3 per query and client CPU from 15-17 to 11-13 µs per query;
	// the cost is at most that much latency, and only while the pipeline
	// is deep.
	batchPending = 16
	readYield    = 40 * time.Microsecond
	// The receive low-water mark of a shared TCP connection (see
	// setLowWater): each request in flight owes at least replyMinBytes,
	// its ReadyForQuery (6 bytes) and a message before it (at least 5:
	// BindComplete, ParseComplete, CloseComplete, CommandComplete,
	// EmptyQueryResponse or ErrorResponse, whatever the request). The
	// mark moves in steps of lowWaterStep bytes, is off below one step,
	// is at most lowWaterMax, and is lowered once the reader has waited
	// lowWaterDelay under it.
	replyMinBytes      = 11
	readyForQueryBytes = 6
	lowWaterStep       = 128
	lowWaterMax        = 16 << 10
	lowWaterDelay      = time.Millisecond
)

// A conn is one PostgreSQL connection on a loop. All of its state is
// touched only on that loop: by the tasks that submit requests, by its reader
// task, and by callbacks posted to the loop.
type conn struct {
	ls      *loopState
	nc      *fdpoll.Conn
	rw      io.ReadWriter // nc, or a *tls.Conn over it
	role    connRole
	network string // how to reach the server again, for CancelRequest
	addr    string

	pid      uint32
	secret   []byte
	params   map[string]string
	txStatus byte

	pending   []*request // sent, awaiting ReadyForQuery; pending[phead] is executing
	phead     int
	headSince time.Time  // when pending[phead] became the head
	blocked   []*request // not sent: waiting for a statement's description
	stmts     stmtCache
	stmtSeq   uint64

	out     []byte // encoding scratch
	backlog []byte // output waiting for the writer task
	spare   []byte
	writing bool                     // a writer task is draining backlog
	drained *fdpoll.Future[struct{}] // completed when writing ends

	rbuf []byte
	r, w int
	need int // bytes the message at r needs, when more than buffered

	dead       bool
	err        error // why it died
	strayUntil time.Time
	// cancelsInFlight counts the CancelRequests of a pinned connection
	// not yet acted on by the server; see held.
	cancelsInFlight int

	// sock is a descriptor of the socket of our own (-1: none), through
	// which the reader sets the receive low-water mark; lowat is the mark
	// set, and lowTimer lowers it (see setLowWater).
	sock     int
	lowat    int
	lowTimer *fdpoll.Timer

	lastTag pgconn.CommandTag // the last CommandComplete, reused when repeated
}

// newConn wraps a connected socket; sock, if not -1, is a second
// descriptor of it for the low-water mark, which the conn now owns.
func newConn(ls *loopState, nc *fdpoll.Conn, sock int, network, addr string, role connRole) *conn {
	return &conn{
		ls: ls, nc: nc, rw: nc, role: role, network: network, addr: addr,
		params: make(map[string]string),
		stmts:  stmtCache{capacity: ls.p.cfg.StatementCacheCapacity},
		rbuf:   make([]byte, readBufferSize),
		sock:   sock,
		lowat:  1, // the kernel's default
	}
}

// load is how many requests the connection has not finished.
func (c *conn) load() int { return len(c.pending) - c.phead + len(c.blocked) }

func (c *conn) head() *request {
	if c.phead < len(c.pending) {
		return c.pending[c.phead]
	}
	return nil
}

// busy reports whether new requests should go elsewhere: the pipeline is
// full, or its head has been executing for a while.
func (c *conn) busy(now time.Time) bool {
	if c.load() >= maxPipeline {
		return true
	}
	return c.phead < len(c.pending) && now.Sub(c.headSince) > stallAfter
}

func (c *conn) popHead() *request {
	r := c.pending[c.phead]
	c.pending[c.phead] = nil
	c.phead++
	if c.phead < len(c.pending) {
		c.headSince = time.Now()
	}
	if c.phead == len(c.pending) {
		c.pending, c.phead = c.pending[:0], 0
	} else if c.phead >= 1024 && c.phead > len(c.pending)/2 {
		n := copy(c.pending, c.pending[c.phead:])
		clear(c.pending[n:])
		c.pending, c.phead = c.pending[:n], 0
	}
	return r
}

// lost wraps the error that broke an established connection.
func (c *conn) lost(op string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &ConnError{Op: op, Addr: c.addr, Err: err}
}

// submit sends r on c, or queues it behind requests waiting for a statement
// description so that c's requests stay in submission order.
func (c *conn) submit(r *request) {
	if c.dead {
		r.fail(c.err)
		return
	}
	if c.role != roleShared {
		c.cancelEnded()
	}
	if len(c.blocked) > 0 || c.held() {
		r.conn = c
		c.blocked = append(c.blocked, r)
		return
	}
	c.send(r)
}

// held reports whether a pinned connection must keep new requests in
// blocked: while a CancelRequest for it is in flight, or waits for its
// request to reach the head (a cancel arriving after its statement has
// ended would hit the next one), and while a COPY FROM STDIN runs
// (anything written then would break the copy). The pending requests of a
// pinned connection are few.
func (c *conn) held() bool {
	if c.role == roleShared {
		return false
	}
	if c.cancelsInFlight > 0 {
		return true
	}
	for _, q := range c.pending[c.phead:] {
		if q.wantCancel || q.kind == kindCopyIn && !q.finished {
			return true
		}
	}
	return false
}

// cancelEnded starts the cancellation of the requests on the wire whose
// context has ended but whose context watch has not reached the loop yet.
// A pinned connection's owner that saw its context end may submit its
// next request first; the cancel must still come before that request.
func (c *conn) cancelEnded() {
	for _, q := range c.pending[c.phead:] {
		if !q.cancelled && !q.finished && q.ctx != nil && q.ctx.Err() != nil {
			q.cancelOnLoop()
		}
	}
}

// send encodes r and writes it; it reports false, parking r in blocked,
// when r needs a statement whose description has not arrived.
func (c *conn) send(r *request) bool {
	r.conn = c
	if c.dead {
		// A write of an earlier request broke the connection (unblock
		// sends several): fail the rest rather than queue them on it.
		r.fail(c.err)
		return true
	}
	if r.cancelled || r.finished {
		r.fail(r.ctx.Err())
		return true
	}
	if r.stmt != nil && r.stmt.err != nil {
		r.fail(r.stmt.err)
		return true
	}
	if c.role == roleShared && (r.kind == kindQuery || r.kind == kindExec) && opensTransaction(r.sql) {
		r.fail(ErrTxStatement)
		return true
	}
	var err error
	out := c.out[:0]
	switch r.kind {
	case kindQuery, kindExec:
		switch {
		case r.kind == kindExec && len(r.args) == 0:
			// Exec without arguments takes the simple protocol, which
			// also runs several ;-separated statements.
			r.simple = true
			out = appendQuery(out, r.sql)
		case c.ls.p.cfg.ExecMode == ExecModeUnnamed:
			out, err = c.appendUnnamed(out, r)
		default:
			st := c.stmts.get(r.sql)
			if st == nil {
				st = c.prepare(r.sql)
				out = c.out[:0] // prepare used the scratch buffer
			}
			if !st.ready {
				r.stmt = st
				c.blocked = append(c.blocked, r)
				return false
			}
			r.stmt = st
			if r.rows != nil {
				r.rows.fields = st.fields
			}
			out, err = c.appendBind(out, r, st)
		}
	case kindSimple, kindCopyIn, kindCopyOut:
		r.simple = true
		out = appendQuery(out, r.sql)
	case kindPrepare:
		out = appendParse(out, r.stmt.name, r.stmt.sql)
		out = appendDescribeStatement(out, r.stmt.name)
		out = append(out, msgSync...)
	case kindClose:
		out = appendCloseStatement(out, r.stmt.name)
		out = append(out, msgSync...)
	}
	if err != nil {
		c.keepScratch(out)
		r.fail(err)
		return true
	}
	if c.phead == len(c.pending) {
		c.headSince = time.Now()
	}
	c.pending = append(c.pending, r)
	r.sent = true
	c.write(out)
	c.keepScratch(out)
	return true
}

func (c *conn) keepScratch(b []byte) {
	if cap(b) <= scratchKeep {
		c.out = b[:0]
	} else {
		c.out = nil
	}
}

// prepare caches a new statement for sql and sends its Parse and Describe
// (after closing whatever the cache evicts).
func (c *conn) prepare(sql string) *stmt {
	c.stmtSeq++
	st := &stmt{name: "pgasync_" + strconv.FormatUint(c.stmtSeq, 10), sql: sql}
	for _, old := range c.stmts.add(st) {
		c.send(&request{kind: kindClose, ls: c.ls, stmt: old})
	}
	c.send(&request{kind: kindPrepare, ls: c.ls, stmt: st})
	return st
}

// appendBind encodes Bind, Execute and Sync for a cached statement.
// Parameters go in binary where the type has a binary codec (strings always
// in text, which the server parses for any type); results come back in the
// formats the statement chose.
func (c *conn) appendBind(b []byte, r *request, st *stmt) ([]byte, error) {
	n := len(st.paramOIDs)
	if len(r.args) != n {
		return b, &ArgError{Index: min(len(r.args), n), Err: errArgCount(n, len(r.args))}
	}
	m := c.ls.types
	b, at := beginMsg(b, 'B')
	b = append(b, 0) // unnamed portal
	b = appendCString(b, st.name)
	b = appendInt16(b, int16(n))
	formats := len(b)
	for range n {
		b = append(b, 0, 0)
	}
	b = appendInt16(b, int16(n))
	for i, arg := range r.args {
		oid := st.paramOIDs[i]
		format := paramFormat(m, oid, arg)
		lenAt := len(b)
		b = append(b, 0, 0, 0, 0)
		v, err := m.Encode(oid, format, arg, b)
		if err != nil {
			// Some values encode in one format only.
			format = 1 - format
			var err2 error
			if v, err2 = m.Encode(oid, format, arg, b); err2 != nil {
				return b[:at-1], &ArgError{Index: i, Err: err}
			}
		}
		if v == nil {
			binary.BigEndian.PutUint32(b[lenAt:], 0xffffffff) // NULL
		} else {
			b = v // Encode may have moved the buffer
			binary.BigEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
		}
		binary.BigEndian.PutUint16(b[formats+2*i:], uint16(format))
	}
	if r.rows == nil {
		b = appendInt16(b, 0) // rows are dropped: any format will do
	} else {
		b = appendInt16(b, int16(len(st.resultFormats)))
		for _, f := range st.resultFormats {
			b = appendInt16(b, f)
		}
	}
	b = finishMsg(b, at)
	b = append(b, msgExecuteAll...)
	return append(b, msgSync...), nil
}

// appendUnnamed encodes Parse, Bind, Describe, Execute and Sync on the
// unnamed statement, parameters and results in text (ExecModeUnnamed).
func (c *conn) appendUnnamed(b []byte, r *request) ([]byte, error) {
	if len(r.args) > maxParams {
		return b, &ArgError{Index: maxParams, Err: errTooManyArgs(len(r.args))}
	}
	m := c.ls.types
	start := len(b)
	b = appendParse(b, "", r.sql)
	b, at := beginMsg(b, 'B')
	b = append(b, 0, 0)   // unnamed portal, unnamed statement
	b = appendInt16(b, 0) // every parameter in text
	b = appendInt16(b, int16(len(r.args)))
	for i, arg := range r.args {
		lenAt := len(b)
		b = append(b, 0, 0, 0, 0)
		v, err := encodeUntyped(m, arg, b)
		if err != nil {
			return b[:start], &ArgError{Index: i, Err: err}
		}
		if v == nil {
			binary.BigEndian.PutUint32(b[lenAt:], 0xffffffff)
			continue
		}
		b = v
		binary.BigEndian.PutUint32(b[lenAt:], uint32(len(b)-lenAt-4))
	}
	b = appendInt16(b, 0) // every result in text
	b = finishMsg(b, at)
	b = append(b, msgDescribePortl...)
	b = append(b, msgExecuteAll...)
	return append(b, msgSync...), nil
}

// write queues b for the server. Output goes straight into the socket's
// buffer (flushed by the loop at the end of its iteration) as long as that
// cannot make the write wait; past the high-water mark a writer task takes
// over, and later output queues behind it, so the byte order always matches
// the order of c.pending and no caller ever blocks the loop.
func (c *conn) write(b []byte) {
	if c.dead {
		return
	}
	if c.writing {
		c.backlog = append(c.backlog, b...)
		return
	}
	// TLS adds a record header and tag per record.
	if c.nc.Buffered()+len(b)+len(b)/256+64 <= outputHighWater {
		if _, err := c.rw.Write(b); err != nil {
			c.fail(c.lost("write", err))
		}
		return
	}
	c.backlog = append(c.backlog, b...)
	c.writing = true
	c.ls.loop.Spawn(context.Background(), c.drainBacklog)
}

// drainBacklog is the writer task: it writes queued output, waiting while
// the socket's buffer is full.
func (c *conn) drainBacklog(context.Context) error {
	for len(c.backlog) > 0 && !c.dead {
		b := c.backlog
		c.backlog = c.spare[:0]
		_, err := c.rw.Write(b)
		if cap(b) <= scratchKeep {
			c.spare = b[:0]
		}
		if err != nil {
			c.fail(c.lost("write", err))
		}
	}
	c.endWriting()
	return nil
}

// endWriting marks the writer done and wakes a COPY waiting to write.
func (c *conn) endWriting() {
	c.writing = false
	if f := c.drained; f != nil {
		c.drained = nil
		f.Complete(struct{}{}, nil)
	}
}

// writeWait writes b from a task, waiting for buffer space (COPY data):
// it holds the writer's place, so output queued meanwhile (there is none on
// a pinned connection in COPY) goes after it, and it waits for a writer
// task to finish first.
func (c *conn) writeWait(b []byte) error {
	for c.writing && !c.dead {
		if c.drained == nil {
			c.drained = fdpoll.NewFuture[struct{}]()
		}
		if _, err := fdpoll.Await(context.Background(), c.drained); err != nil {
			return err
		}
	}
	if c.dead {
		return c.err
	}
	c.writing = true
	if _, err := c.rw.Write(b); err != nil {
		c.fail(c.lost("write", err))
	}
	c.drainBacklog(nil)
	if c.dead {
		return c.err
	}
	return nil
}

// readLoop is the connection's reader task: it reads replies and hands each
// to the request at the head of the pipeline, until the connection breaks
// or is closed.
func (c *conn) readLoop(ctx context.Context) error {
	for !c.dead {
		for {
			typ, body, ok, err := c.nextMsg()
			if err != nil {
				c.fail(c.lost("protocol", err))
				return nil
			}
			if !ok {
				break
			}
			if err := c.handle(typ, body); err != nil {
				c.fail(c.lost("protocol", err))
				return nil
			}
			if c.dead {
				return nil
			}
		}
		if c.sock >= 0 {
			c.setLowWater()
		} else if c.load() >= batchPending {
			// Many replies to come: pause before reading them. Meanwhile
			// the loop runs the tasks the last replies woke and sends
			// their next queries in one write, and replies gather in the
			// socket, so that each read and write carries a batch rather
			// than a reply or two (the server sends each reply on its own).
			fdpoll.Sleep(ctx, readYield)
		}
		if err := c.fill(); err != nil {
			c.fail(c.lost("read", err))
			return nil
		}
	}
	return nil
}

// setLowWater sets the socket's receive low-water mark before the reader
// waits for more replies. With many requests in flight the server sends
// their replies one by one, each in a write of its own; a reader woken by
// every one of them (and a server paying for every wake-up) spends most of
// its time waking up. The mark makes the kernel hold the replies back until
// a batch has arrived: one wake-up and one read for the batch, and the tasks
// it completes send their next queries in one write.
//
// The mark never asks for more than is sure to come — every request in
// flight still owes at least replyMinBytes, less what is already buffered
// — so the wait ends; and a timer lowers the mark once the reader
// has waited lowWaterDelay, so replies that did arrive are not held behind
// a slow query for longer than that.
func (c *conn) setLowWater() {
	want := 1
	// The head request may already have had its first message read: it
	// is sure to owe only its ReadyForQuery.
	owed := replyMinBytes*(len(c.pending)-c.phead) - (replyMinBytes - readyForQueryBytes)
	if n := owed - (c.w - c.r); n >= lowWaterStep {
		want = min(n, lowWaterMax) &^ (lowWaterStep - 1)
	}
	if want != c.lowat {
		if err := setRcvLowat(c.sock, want); err != nil {
			if c.lowat > 1 {
				// A raised mark that cannot be lowered again would hold
				// replies back.
				c.fail(c.lost("read", err))
				return
			}
			// Not for this socket after all: pause between reads instead.
			c.dropLowWater()
			return
		}
		c.lowat = want
	}
	if want > 1 {
		if d := c.ls.p.lowWaterDelay; c.lowTimer == nil {
			c.lowTimer = c.ls.loop.AfterFunc(d, c.lowerWater)
		} else {
			c.lowTimer.Reset(d)
		}
	}
}

// lowerWater is the low-water timer: the reader has waited long enough,
// so whatever has arrived is reported readable at once. It runs on the
// loop.
func (c *conn) lowerWater() {
	if c.sock >= 0 && c.lowat > 1 {
		if err := setRcvLowat(c.sock, 1); err != nil {
			c.fail(c.lost("read", err))
			return
		}
		c.lowat = 1
	}
}

// dropLowWater closes the low-water descriptor and stops its timer.
func (c *conn) dropLowWater() {
	if c.lowTimer != nil {
		c.lowTimer.Stop()
	}
	if c.sock >= 0 {
		closeSock(c.sock)
		c.sock = -1
	}
}

// nextMsg takes the next complete message out of the read buffer; ok is
// false when it is not all there yet.
func (c *conn) nextMsg() (typ byte, body []byte, ok bool, err error) {
	avail := c.w - c.r
	if avail < 5 {
		c.need = 5
		return 0, nil, false, nil
	}
	typ = c.rbuf[c.r]
	n := int(binary.BigEndian.Uint32(c.rbuf[c.r+1:]))
	if n < 4 || n > maxMessageSize || n > maxShortMessage && !mayBeLong(typ) {
		return 0, nil, false, protocolErrorf("message %s with invalid length %d", msgName(typ), n)
	}
	if avail < 1+n {
		c.need = 1 + n
		return 0, nil, false, nil
	}
	body = c.rbuf[c.r+5 : c.r+1+n : c.r+1+n]
	c.r += 1 + n
	return typ, body, true, nil
}

// mayBeLong reports whether messages of type typ may be longer than
// maxShortMessage; the others are refused past it at once, as libpq does,
// rather than waited for.
func mayBeLong(typ byte) bool {
	switch typ {
	case 'D', 'd', 'T', 't', 'E', 'N', 'A', 'S', 'R', 'V', 'v':
		return true
	}
	return false
}

// maxShortMessage is libpq's bound on the messages that are always short
// (CommandComplete, ReadyForQuery, ...).
const maxShortMessage = 30000

// fill reads more bytes into the read buffer, making room for the message
// being read (c.need) first. The buffer grows by doubling as the message
// arrives, not to its declared length at once: a server announcing a huge
// message and sending little costs about what it sent.
func (c *conn) fill() error {
	if c.r == c.w {
		c.r, c.w = 0, 0
		if len(c.rbuf) > readBufferSize && c.need <= readBufferSize {
			c.rbuf = make([]byte, readBufferSize)
		}
	}
	if c.need > len(c.rbuf)-c.r {
		if c.r > 0 {
			copy(c.rbuf, c.rbuf[c.r:c.w])
			c.w -= c.r
			c.r = 0
		}
		if c.w == len(c.rbuf) {
			nb := make([]byte, min(c.need, 2*len(c.rbuf)))
			copy(nb, c.rbuf[:c.w])
			c.rbuf = nb
		}
	}
	n, err := c.rw.Read(c.rbuf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readMsg reads one whole message; the start-up exchange uses it.
func (c *conn) readMsg() (byte, []byte, error) {
	for {
		typ, body, ok, err := c.nextMsg()
		if err != nil || ok {
			return typ, body, err
		}
		if err := c.fill(); err != nil {
			return 0, nil, err
		}
	}
}

// handle dispatches one message from the server.
func (c *conn) handle(typ byte, body []byte) error {
	switch typ {
	case 'A': // NotificationResponse
		var n pgproto3.NotificationResponse
		if err := n.Decode(body); err != nil {
			return protocolErrorf("malformed NotificationResponse: %v", err)
		}
		// Only the loop's LISTEN connection speaks for its listeners.
		// Another may still listen to a channel from its past (a LISTEN
		// run in a transaction, one whose caller gave up waiting):
		// passing that on would deliver the notification twice.
		if st := c.ls.listen; st != nil && st.c == c {
			c.ls.notify(&Notification{Channel: n.Channel, Payload: n.Payload, PID: n.PID})
		}
		return nil
	case 'N': // NoticeResponse
		pe, err := pgError(body)
		if err != nil {
			return err
		}
		if fn := c.ls.p.cfg.OnNotice; fn != nil {
			fn((*pgconn.Notice)(pe))
		}
		return nil
	case 'S': // ParameterStatus
		r := msgReader{b: body}
		k, v := r.cstring(), r.cstring()
		if r.bad {
			return protocolErrorf("malformed ParameterStatus")
		}
		c.params[string(k)] = string(v)
		return nil
	}
	r := c.head()
	if r == nil {
		if typ == 'E' {
			// A FATAL error outside any request: the server is closing
			// the connection (shutdown, pg_terminate_backend).
			pe, err := pgError(body)
			if err != nil {
				return err
			}
			c.fail(c.lost("read", pe))
			return nil
		}
		return protocolErrorf("message %s with no request pending", msgName(typ))
	}
	if typ != 'Z' {
		return r.onMessage(c, typ, body)
	}
	if len(body) != 1 {
		return protocolErrorf("malformed ReadyForQuery")
	}
	c.txStatus = body[0]
	c.popHead()
	if c.role == roleShared && c.txStatus != 'I' {
		// A statement left the shared connection inside a transaction
		// (BEGIN hidden in a multi-statement Exec, say). The requests
		// behind it would run inside that transaction: drop the
		// connection, which rolls it back, and fail them all.
		if r.err == nil {
			r.err = ErrTxStatement
		}
		r.finish()
		c.fail(c.lost("protocol", ErrTxStatement))
		return nil
	}
	c.complete(r)
	if h := c.head(); h != nil && h.wantCancel {
		h.wantCancel = false
		c.sendCancel()
	}
	if c.role != roleShared && len(c.blocked) > 0 && !c.dead {
		// What a finished COPY FROM or a cancel's turn held back.
		c.unblock()
	}
	return nil
}

// complete ends r after its ReadyForQuery.
func (c *conn) complete(r *request) {
	switch r.kind {
	case kindPrepare:
		st := r.stmt
		if r.err != nil {
			st.err = r.err
			c.stmts.remove(st)
		} else {
			st.ready = true
		}
		r.finish()
		c.unblock()
		return
	case kindQuery, kindExec:
		if r.err != nil && c.retryable(r) {
			r.resetForRetry()
			c.ls.submit(r)
			return
		}
	case kindCopyOut:
		if r.err == nil && r.copyErr != nil {
			r.err = r.copyErr
		}
	}
	r.finish()
}

// retryable reports whether a failed autocommit request is known to have
// had no effect and may be sent again (once): it was hit by a
// CancelRequest meant for another request, or its cached statement went
// stale (the server drops it before executing anything).
func (c *conn) retryable(r *request) bool {
	if r.retried || r.cancelled || r.target != nil || r.ctx.Err() != nil {
		return false
	}
	switch sqlState(r.err) {
	case "57014": // query_canceled
		if time.Now().Before(c.strayUntil) {
			c.strayUntil = time.Time{}
			return true
		}
	case "26000": // invalid_sql_statement_name: nothing ran
		if r.stmt != nil {
			c.stmts.remove(r.stmt)
			return true
		}
	case "0A000": // feature_not_supported
		if r.stmt != nil {
			// Maybe the statement went stale (a table it reads was
			// altered): prepare it afresh next time, as pgx does. But
			// retry only when the server says so, before running
			// anything; other errors of the class may come after the
			// statement had effects (nextval, say).
			c.stmts.remove(r.stmt)
			return stalePlan(r.err)
		}
	}
	return false
}

// stalePlan reports whether err is the server's "cached plan must not
// change result type", raised before it executes anything. The routine
// name identifies it whatever the server's language; the message is the
// fallback.
func stalePlan(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return pe.Routine == "RevalidateCachedQuery" || strings.Contains(pe.Message, "cached plan must not change result type")
}

// unblock sends the requests that waited for a statement description, in
// order, until one needs another description.
func (c *conn) unblock() {
	if c.held() {
		return
	}
	q := c.blocked
	c.blocked = nil
	for i, r := range q {
		if !c.send(r) {
			c.blocked = append(c.blocked, q[i+1:]...)
			return
		}
	}
}

// sendCancel asks the server, on a connection of its own, to cancel what
// this connection's backend is executing.
func (c *conn) sendCancel() {
	if c.pid == 0 || c.dead {
		return
	}
	msg, err := (&pgproto3.CancelRequest{ProcessID: c.pid, SecretKey: c.secret}).Encode(nil)
	if err != nil {
		return
	}
	pinned := c.role != roleShared
	if pinned {
		c.cancelsInFlight++
	} else {
		c.strayUntil = time.Now().Add(strayCancelWindow)
	}
	loop, network, addr := c.ls.loop, c.network, c.addr
	loop.Spawn(c.ls.p.ctx, func(ctx context.Context) error {
		if pinned {
			defer c.cancelDone() // the task runs on c's loop
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		nc, err := fdpoll.Await(ctx, loop.Dial(ctx, network, addr))
		if err != nil {
			return nil // best effort, as in libpq
		}
		defer nc.Close()
		if _, err := nc.Write(msg); err != nil {
			return nil
		}
		// The server closes the connection once it has acted.
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		nc.Read(b[:])
		return nil
	})
}

// cancelDone notes that a CancelRequest of a pinned connection has been
// acted on (or given up), and sends what waited for it. It runs on the
// loop.
func (c *conn) cancelDone() {
	c.cancelsInFlight--
	if !c.dead {
		c.unblock()
	}
}

// fail breaks the connection: requests on the wire fail with err, requests
// not yet sent go back to the loop to be sent elsewhere, and the loop
// forgets the connection.
func (c *conn) fail(err error) {
	if c.dead {
		return
	}
	c.dead, c.err = true, err
	c.nc.Close()
	c.dropLowWater()
	sent := c.pending[c.phead:]
	c.pending, c.phead = nil, 0
	blocked := c.blocked
	c.blocked = nil
	c.backlog = nil
	for _, r := range sent {
		r.fail(err)
	}
	c.ls.connGone(c)
	for _, r := range blocked {
		if r.finished {
			continue
		}
		// Sent elsewhere once: a request whose statement breaks every
		// connection it is prepared on (a protocol error in its
		// description, say) must not go round reconnecting for ever.
		if r.target != nil || r.kind == kindPrepare || r.kind == kindClose || r.retried {
			r.fail(err)
			continue
		}
		r.retried = true
		r.conn, r.stmt = nil, nil
		c.ls.submit(r)
	}
}

// close ends the connection politely: Terminate, then close once output is
// flushed. Pending requests fail with err.
func (c *conn) close(err error) {
	if c.dead {
		return
	}
	if !c.writing {
		c.rw.Write(msgTerminate)
	}
	c.fail(err)
}

// maxParams is the most parameters a statement can have: the protocol
// counts them in 16 bits.
const maxParams = 65535

func errTooManyArgs(got int) error {
	return errors.New(strconv.Itoa(got) + " arguments: the protocol allows at most " + strconv.Itoa(maxParams))
}

func errArgCount(want, got int) error {
	return errors.New("statement has " + strconv.Itoa(want) + " parameters, got " + strconv.Itoa(got) + " arguments")
}
