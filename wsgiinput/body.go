package wsgiinput

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/yieldio/yieldio/fdpoll"
)

// A Body is a message body streamed from a connection's Input. Read inside
// a task suspends the task until data arrives; in a plain goroutine it
// blocks. Next returns the next piece as a future instead. Nothing is read
// from the connection until a reader asks.
//
// One read (Read, Next, WriteTo or Discard) may be in progress at a time;
// another started meanwhile fails. Close may be called at any time.
type Body struct {
	in    *Input
	dec   Decoder
	loop  *fdpoll.Loop
	limit int64 // payload bytes allowed, -1 for no limit

	mu       sync.Mutex
	reading  bool
	closed   bool
	inflight *fdpoll.Future[[]byte] // a Next whose result has not been taken

	// Reader state, touched only by the reader in progress.
	pend    []byte // decoded payload at the front of the Input, not yet returned
	n       int64  // payload bytes returned
	eof     bool
	err     error
	before  func()
	trailer http.Header // filled from a chunked body's trailer at its end
}

// NewBody returns the body framed by dec on in. loop, if not nil, runs the
// tasks behind Next; otherwise they run on the caller's loop or a loop of
// the default group.
func NewBody(in *Input, dec Decoder, loop *fdpoll.Loop) *Body {
	return &Body{in: in, dec: dec, loop: loop, limit: -1}
}

// SetLimit makes reads fail with *http.MaxBytesError once more than n
// payload bytes have been read. n < 0 removes the limit.
func (b *Body) SetLimit(n int64) { b.limit = n }

// FillTrailer makes the body copy its trailer fields into h when it reaches
// its end, as net/http fills Request.Trailer.
func (b *Body) FillTrailer(h http.Header) { b.trailer = h }

// BeforeWait registers fn to run once, just before the body first waits for
// the network. A server uses it to send "100 Continue" only when a handler
// actually reads a body the client is holding back.
func (b *Body) BeforeWait(fn func()) { b.before = fn }

var errConcurrentRead = errors.New("wsgiinput: concurrent read of a body")

// begin claims the body for one read.
func (b *Body) begin() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrBodyReadAfterClose
	case b.reading || b.inflight != nil:
		return errConcurrentRead
	}
	b.reading = true
	return nil
}

func (b *Body) end() {
	b.mu.Lock()
	b.reading = false
	b.mu.Unlock()
}

// Read reads up to len(p) payload bytes.
func (b *Body) Read(p []byte) (int, error) {
	if err := b.begin(); err != nil {
		return 0, err
	}
	defer b.end()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(b.pend) > 0 {
			n := copy(p, b.pend)
			return n, b.take(n)
		}
		if err := b.state(); err != nil {
			return 0, err
		}
		if b.decodeBuffered() {
			continue
		}
		// Large reads inside a data span go straight from the socket.
		if d := b.dec.Direct(); d > 0 && len(p) >= DefaultBufferSize {
			b.beforeWait()
			n, err := b.in.ReadDirect(p[:min(int64(len(p)), d)])
			if n > 0 {
				b.dec.Advance(n)
				if _, _, end := b.dec.Decode(nil); end == io.EOF {
					b.eof = true // that was the last of a Content-Length body
				}
				return b.count(n)
			}
			b.sourceErr(err)
			continue
		}
		b.fill()
	}
}

// take hands out n bytes of pend.
func (b *Body) take(n int) error {
	b.pend = b.pend[n:]
	b.in.Discard(n)
	_, err := b.count(n)
	return err
}

// count adds n returned bytes and enforces the limit.
func (b *Body) count(n int) (int, error) {
	b.n += int64(n)
	if b.limit >= 0 && b.n > b.limit {
		b.err = &http.MaxBytesError{Limit: b.limit}
		return n, b.err
	}
	return n, nil
}

// state returns io.EOF at the end, the sticky error, or nil.
func (b *Body) state() error {
	if b.err != nil {
		return b.err
	}
	if b.eof {
		return io.EOF
	}
	return nil
}

// decodeBuffered runs the decoder over buffered input; it reports whether
// that made progress.
func (b *Body) decodeBuffered() bool {
	buf := b.in.Buffered()
	if len(buf) == 0 {
		return false
	}
	data, consumed, err := b.dec.Decode(buf)
	b.in.Discard(consumed - len(data)) // framing; the data stays in front
	b.pend = data
	switch {
	case err == io.EOF:
		b.eof = true
		if c, ok := b.dec.(*Chunked); ok && b.trailer != nil {
			for k, v := range c.Trailer {
				b.trailer[k] = v
			}
		}
	case err != nil:
		b.err = err
	}
	return consumed > 0 || err != nil
}

func (b *Body) beforeWait() {
	if b.before != nil {
		fn := b.before
		b.before = nil
		fn()
	}
}

// fill waits for more input.
func (b *Body) fill() {
	b.beforeWait()
	b.sourceErr(b.in.Fill())
}

// sourceErr interprets an error of the connection.
func (b *Body) sourceErr(err error) {
	switch {
	case err == nil:
	case err == io.EOF:
		if e := b.dec.EOF(); e != nil {
			b.err = e
		} else {
			b.eof = true
		}
	default:
		b.err = err
	}
}

// next returns the next piece of payload, aliasing the Input's buffer.
func (b *Body) next() ([]byte, error) {
	for {
		if len(b.pend) > 0 {
			data := b.pend
			return data, b.take(len(data))
		}
		if err := b.state(); err != nil {
			return nil, err
		}
		if !b.decodeBuffered() {
			b.fill()
		}
	}
}

// Next returns a future of the next piece of the body, io.EOF at its end.
// The bytes alias the connection's buffer: they are valid until the next
// call to Next or Read. If ctx is done first the future fails with ctx's
// error, and the piece being read is kept for the next call.
func (b *Body) Next(ctx context.Context) *fdpoll.Future[[]byte] {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return fdpoll.Failed[[]byte](ErrBodyReadAfterClose)
	case b.reading:
		b.mu.Unlock()
		return fdpoll.Failed[[]byte](errConcurrentRead)
	}
	inner := b.inflight
	if inner == nil {
		// Data already buffered needs no task.
		if len(b.pend) > 0 || len(b.in.Buffered()) > 0 || b.state() != nil {
			b.reading = true
			b.mu.Unlock()
			data, err := b.next()
			b.end()
			return fdpoll.Completed(data, err)
		}
		l := b.loop
		if l == nil {
			l = fdpoll.LoopOf(ctx)
		}
		if l == nil {
			l = fdpoll.Default().Next()
		}
		inner = fdpoll.Call(l, context.Background(), func(context.Context) ([]byte, error) {
			return b.next()
		})
		b.inflight = inner
	}
	b.mu.Unlock()

	if inner.Done() {
		b.takeInflight(inner)
		return inner
	}
	out := fdpoll.NewFuture[[]byte]()
	stop := context.AfterFunc(ctx, func() { out.Complete(nil, ctx.Err()) })
	inner.OnComplete(func(data []byte, err error) {
		stop()
		if out.Complete(data, err) {
			b.takeInflight(inner)
		}
	})
	return out
}

// takeInflight marks the result of a Next as handed out.
func (b *Body) takeInflight(f *fdpoll.Future[[]byte]) {
	b.mu.Lock()
	if b.inflight == f {
		b.inflight = nil
	}
	b.mu.Unlock()
}

var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 64<<10)
	return &b
}}

// WriteTo writes the rest of the body to w without an intermediate copy; it
// makes io.Copy from a Body efficient.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	if err := b.begin(); err != nil {
		return 0, err
	}
	defer b.end()
	var total int64
	var big *[]byte
	defer func() {
		if big != nil {
			copyBuffers.Put(big)
		}
	}()
	for {
		// Inside a data span with nothing buffered, read straight from
		// the connection in large pieces.
		if len(b.pend) == 0 && len(b.in.Buffered()) == 0 && b.state() == nil {
			if d := b.dec.Direct(); d > 0 {
				if big == nil {
					big = copyBuffers.Get().(*[]byte)
				}
				b.beforeWait()
				n, err := b.in.ReadDirect((*big)[:min(int64(len(*big)), d)])
				if n > 0 {
					b.dec.Advance(n)
					if _, _, end := b.dec.Decode(nil); end == io.EOF {
						b.eof = true
					}
					if _, err := b.count(n); err != nil {
						return total, err
					}
					m, werr := w.Write((*big)[:n])
					total += int64(m)
					if werr != nil {
						return total, werr
					}
				}
				b.sourceErr(err)
				continue
			}
		}
		data, err := b.next()
		if len(data) > 0 {
			n, werr := w.Write(data)
			total += int64(n)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Discard reads and drops up to limit payload bytes. It reports whether that
// reached the end of the body; err is the error that stopped it otherwise
// (a framing error, a lost connection), nil if it only hit limit.
func (b *Body) Discard(limit int64) (done bool, err error) {
	if err := b.begin(); err != nil {
		return false, err
	}
	defer b.end()
	for dropped := int64(0); dropped <= limit; {
		if len(b.pend) > 0 {
			n := int(min(int64(len(b.pend)), limit-dropped+1))
			b.pend = b.pend[n:]
			b.in.Discard(n)
			b.n += int64(n)
			dropped += int64(n)
			continue
		}
		switch err := b.state(); {
		case err == io.EOF:
			return true, nil
		case err != nil:
			return false, err
		}
		if !b.decodeBuffered() {
			b.fill()
		}
	}
	return false, nil
}

// Remaining returns how many payload bytes are still to be read, or -1 when
// the framing does not say (chunked, read-until-close).
func (b *Body) Remaining() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reading {
		return -1
	}
	if d, ok := b.dec.(*lengthDecoder); ok {
		return d.left + int64(len(b.pend))
	}
	return -1
}

// Done reports whether the whole body has been read.
func (b *Body) Done() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.reading && b.eof && len(b.pend) == 0
}

// Err returns the error that ended the body early (a *FramingError, a lost
// connection, *http.MaxBytesError), or nil.
func (b *Body) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reading {
		return nil
	}
	return b.err
}

// Busy reports whether a read is in progress (a handler that returned while
// a goroutine of its still reads, say).
func (b *Body) Busy() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reading || b.inflight != nil
}

// Trailer returns the trailer fields of a chunked body once it has been read
// to the end, or nil.
func (b *Body) Trailer() http.Header {
	if c, ok := b.dec.(*Chunked); ok && b.Done() {
		return c.Trailer
	}
	return nil
}

// Close marks the body closed: later reads fail with ErrBodyReadAfterClose.
// It does not read the rest of the body; the owner of the connection
// decides whether to drain it or close the connection.
func (b *Body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}
