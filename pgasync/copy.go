package pgasync

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/yieldio/yieldio/fdpoll"
)

// copyChunk is how much of CopyFrom's reader goes into one CopyData
// message. With the connection's output buffer (64 KiB at most before the
// writer waits) it bounds the memory of a COPY, whatever its size.
const copyChunk = 32 << 10

var errSecondCopyIn = errors.New("pgasync: CopyFrom: the statement runs more than one COPY FROM STDIN")

// CopyFrom runs sql, a COPY ... FROM STDIN statement, streaming r to the
// server as it reads it, and returns a future of the number of rows copied.
// Memory stays bounded whatever the size of the data: a chunk of r is read
// only once the previous one fits in the connection's buffer. r is read in a
// task on a loop, so a reader that suspends (a yieldio request body) lets
// the loop run meanwhile; one that blocks (a file, a pipe) blocks the loop
// while it does.
//
// If r fails, the COPY is aborted (CopyFail) and the future fails with r's
// error; if ctx ends, the server is asked to cancel and the future fails
// with ctx's error. The connection is reused either way.
func (p *Pool) CopyFrom(ctx context.Context, sql string, r io.Reader) *fdpoll.Future[int64] {
	return p.pinned(ctx, func(ctx context.Context, c *conn) (int64, error) { return copyIn(ctx, c, sql, r) })
}

// CopyTo runs sql, a COPY ... TO STDOUT statement, writing the data to w as
// it arrives, and returns a future of the number of rows copied. w is
// called in a task on a loop: a writer that suspends (a yieldio response)
// holds the server back through TCP flow control; one that blocks blocks
// the loop while it does. If w fails, the server is asked to cancel and the
// future fails with w's error.
func (p *Pool) CopyTo(ctx context.Context, sql string, w io.Writer) *fdpoll.Future[int64] {
	return p.pinned(ctx, func(ctx context.Context, c *conn) (int64, error) { return copyOut(ctx, c, sql, w) })
}

// pinned runs fn in a task with a pinned connection of the caller's loop
// (or the next loop), returned to the pool afterwards.
func (p *Pool) pinned(ctx context.Context, fn func(context.Context, *conn) (int64, error)) *fdpoll.Future[int64] {
	if ctx == nil {
		ctx = context.Background()
	}
	if p.closed.Load() {
		return fdpoll.Failed[int64](ErrPoolClosed)
	}
	ls, _ := p.pick(ctx)
	return fdpoll.Call(ls.loop, ctx, func(tctx context.Context) (int64, error) {
		c, err := ls.acquire(tctx)
		if err != nil {
			return 0, err
		}
		defer ls.release(c)
		return fn(ctx, c)
	})
}

// startCopy sends a COPY statement on c. The request's future completes
// with the server's reply, not with ctx: ctx's end sends a CancelRequest,
// and the caller waits for the server to wind the COPY up, which leaves the
// connection usable.
func startCopy(ctx context.Context, c *conn, kind reqKind, sql string) *request {
	r := newExecReq(ctx, kind, sql, nil)
	r.target, r.keepFuture, r.ls = c, true, c.ls
	r.copyStarted = fdpoll.NewFuture[struct{}]()
	return r
}

func copyIn(ctx context.Context, c *conn, sql string, src io.Reader) (int64, error) {
	r := startCopy(ctx, c, kindCopyIn, sql)
	r.watch()
	c.ls.submit(r)
	bg := context.Background()
	if _, err := fdpoll.Await(bg, r.copyStarted); err != nil {
		return 0, err
	}
	var readErr error
	if !r.finished {
		buf := make([]byte, 5+copyChunk)
		buf[0] = 'd'
		for !r.finished && c.err == nil {
			if err := ctx.Err(); err != nil {
				readErr = err
				break
			}
			n, err := src.Read(buf[5:])
			if n > 0 {
				binary.BigEndian.PutUint32(buf[1:], uint32(4+n))
				if c.writeWait(buf[:5+n]) != nil {
					break
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr = err
				break
			}
		}
		if !r.finished && c.err == nil {
			if readErr != nil {
				c.writeWait(appendCopyFail(nil, "pgasync: "+readErr.Error()))
			} else {
				c.writeWait(msgCopyDone)
			}
		}
	}
	tag, err := fdpoll.Await(bg, r.tagF)
	switch {
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case readErr != nil:
		return 0, fmt.Errorf("pgasync: CopyFrom: reading input: %w", readErr)
	case err != nil:
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func copyOut(ctx context.Context, c *conn, sql string, w io.Writer) (int64, error) {
	r := startCopy(ctx, c, kindCopyOut, sql)
	r.copyOut = w
	r.watch()
	c.ls.submit(r)
	tag, err := fdpoll.Await(context.Background(), r.tagF)
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil {
		if r.copyErr != nil && !errors.Is(err, r.copyErr) {
			err = r.copyErr
		}
		if r.copyErr != nil {
			return 0, fmt.Errorf("pgasync: CopyTo: writing output: %w", err)
		}
		return 0, err
	}
	return tag.RowsAffected(), nil
}
