package wsgiinput

import "io"

// A Decoder takes the framing off one message body. It is a push parser:
// it is handed whatever bytes have arrived and never needs the whole body.
type Decoder interface {
	// Decode examines in, which starts where the previous call stopped
	// consuming. It consumes framing, then returns the payload bytes that
	// follow it (data aliases in), and how many bytes of in it consumed in
	// all. It returns io.EOF, possibly together with data, once the body is
	// complete, and a *FramingError for malformed framing. Consuming all of
	// in without returning data means it needs more input.
	Decode(in []byte) (data []byte, consumed int, err error)

	// Direct reports how many payload bytes come next with no framing in
	// between: a reader may read up to that many straight from the
	// connection into its own buffer and then report them with Advance.
	Direct() int64

	// Advance records n payload bytes read directly; n <= Direct().
	Advance(n int)

	// EOF reports what the end of the connection means for the body: nil
	// if it completes it (read-until-close), io.ErrUnexpectedEOF otherwise.
	EOF() error
}

// ContentLength decodes a body of exactly n bytes.
func ContentLength(n int64) Decoder { return &lengthDecoder{left: n} }

type lengthDecoder struct{ left int64 }

func (d *lengthDecoder) Decode(in []byte) ([]byte, int, error) {
	if d.left == 0 {
		return nil, 0, io.EOF
	}
	n := min(int64(len(in)), d.left)
	d.left -= n
	if d.left == 0 {
		return in[:n], int(n), io.EOF
	}
	return in[:n], int(n), nil
}

func (d *lengthDecoder) Direct() int64 { return d.left }
func (d *lengthDecoder) Advance(n int) { d.left -= int64(n) }

func (d *lengthDecoder) EOF() error {
	if d.left == 0 {
		return nil
	}
	return io.ErrUnexpectedEOF
}

// UntilClose decodes a body that ends when the connection does (a response
// with neither Content-Length nor chunked framing).
func UntilClose() Decoder { return untilClose{} }

type untilClose struct{}

func (untilClose) Decode(in []byte) ([]byte, int, error) { return in, len(in), nil }
func (untilClose) Direct() int64                         { return 1 << 62 }
func (untilClose) Advance(int)                           {}
func (untilClose) EOF() error                            { return nil }
