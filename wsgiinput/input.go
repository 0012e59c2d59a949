package wsgiinput

import (
	"io"
	"sync"
)

// DefaultBufferSize is the size of an Input's buffer until a long message
// head makes it grow.
const DefaultBufferSize = 4096

var buffers = sync.Pool{New: func() any {
	b := make([]byte, DefaultBufferSize)
	return &b
}}

// An Input is the buffered input side of a connection. Message heads are
// parsed straight out of its buffer, and a Body decodes its payload from it.
// It reads from its source only when asked to (Fill, Space and Commit, or
// ReadDirect), which is what gives bodies flow control.
//
// The buffer is taken from a shared pool on first use and given back by
// Release, so an idle connection holds none. An Input is not safe for
// concurrent use.
type Input struct {
	src     io.Reader
	buf     []byte
	pool    *[]byte // the pooled buffer buf came from, if it did
	r, w    int
	max     int
	err     error
	reading int // reads from src in progress (a Fill may hold a slice of buf)
}

// NewInput returns an Input reading from src whose buffer may grow to maxBytes
// bytes (at least DefaultBufferSize) to hold one message head.
func NewInput(src io.Reader, maxBytes int) *Input {
	return &Input{src: src, max: max(maxBytes, DefaultBufferSize)}
}

// Buffered returns the bytes read but not yet consumed. It aliases the
// buffer: it is valid until the next Fill, Space or Release.
func (in *Input) Buffered() []byte { return in.buf[in.r:in.w] }

// Discard consumes n buffered bytes.
func (in *Input) Discard(n int) {
	in.r += n
	if in.r == in.w {
		in.r, in.w = 0, 0
	}
}

// Space returns free buffer space to read into, moving buffered bytes to the
// front or growing the buffer (up to the maximum) as needed. It returns an
// empty slice when the buffer is full at its maximum size.
func (in *Input) Space() []byte {
	if in.buf == nil {
		in.pool = buffers.Get().(*[]byte)
		in.buf = *in.pool
	}
	if in.w < len(in.buf) {
		return in.buf[in.w:]
	}
	if in.r > 0 {
		n := copy(in.buf, in.buf[in.r:in.w])
		in.r, in.w = 0, n
		return in.buf[in.w:]
	}
	if len(in.buf) >= in.max {
		return nil
	}
	bigger := make([]byte, min(2*len(in.buf), in.max))
	copy(bigger, in.buf[:in.w])
	in.putBuffer()
	in.buf = bigger
	return in.buf[in.w:]
}

// Commit records n bytes read into the slice Space returned.
func (in *Input) Commit(n int) { in.w += n }

// Fill reads from the source once, waiting for data (a task suspends, a
// goroutine blocks). It returns the source's error, io.EOF at its end, and
// remembers it: later Fills return it again without reading.
func (in *Input) Fill() error {
	if in.err != nil {
		return in.err
	}
	space := in.Space()
	if len(space) == 0 {
		return errBufferFull
	}
	in.reading++
	n, err := in.src.Read(space)
	in.reading--
	in.w += n
	if err != nil {
		in.err = err
	}
	if n > 0 {
		return nil
	}
	return err
}

// ReadDirect reads from the source straight into p, bypassing the buffer,
// which must be empty: large body reads are not copied twice.
func (in *Input) ReadDirect(p []byte) (int, error) {
	if in.err != nil {
		return 0, in.err
	}
	in.reading++
	n, err := in.src.Read(p)
	in.reading--
	if err != nil {
		in.err = err
	}
	return n, err
}

// SetErr records err as the source's state (a server that read end of
// stream itself, say).
func (in *Input) SetErr(err error) { in.err = err }

// Err returns the error the source returned, if any.
func (in *Input) Err() error { return in.err }

// Release gives an empty buffer back to the pool; the next Space takes one
// again. It does nothing while bytes are buffered, or while a read from the
// source is in progress: that read writes into the buffer when it returns,
// and the buffer must not by then belong to another connection.
func (in *Input) Release() {
	if in.r == in.w && in.buf != nil && in.reading == 0 {
		in.putBuffer()
		in.buf, in.r, in.w = nil, 0, 0
	}
}

func (in *Input) putBuffer() {
	if in.pool != nil {
		buffers.Put(in.pool)
		in.pool = nil
	}
}

var errBufferFull = framingError("input buffer full")
