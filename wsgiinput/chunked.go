package wsgiinput

import (
	"bytes"
	"io"
	"net/http"
)

// Limits of the chunked decoder: a chunk-size line with its extensions, and
// the trailer section.
const (
	MaxChunkLineBytes   = 4096
	DefaultTrailerBytes = 64 << 10
)

// Chunked decodes the chunked transfer coding (RFC 9112 section 7.1):
// hexadecimal chunk sizes with optional extensions, each line ended by
// CRLF, then a last chunk of size 0, an optional trailer section and a final
// CRLF. It is strict: a bare LF or CR, a size that overflows 63 bits, a
// missing CRLF after chunk data, control characters in an extension and
// malformed trailer fields are all *FramingError.
//
// After Decode returns io.EOF, Trailer holds the trailer fields.
type Chunked struct {
	// MaxTrailerBytes bounds the trailer section; zero means
	// DefaultTrailerBytes.
	MaxTrailerBytes int

	// Trailer holds the trailer fields once the body is complete.
	Trailer http.Header

	state   chunkState
	size    int64 // bytes left in the current chunk, or the size being read
	digits  int
	line    int      // bytes of the current chunk line or trailer section so far
	pending []byte   // a trailer line split across calls
	ext     extState // where in the extensions of a chunk line
	nameLen int      // length of the extension name being read
}

// extState tracks the grammar of chunk extensions:
//
//	chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
//	ext-val   = token / quoted-string
type extState uint8

const (
	extBeforeSemi extState = iota // BWS, then ";" or the end of the line
	extName                       // BWS, then a token
	extAfterName                  // BWS, then "=", ";" or the end
	extValueStart                 // BWS, then a token or a quoted string
	extValue                      // in a token value
	extQuoted                     // in a quoted string
	extEscape                     // after a backslash in a quoted string
	extAfterValue                 // BWS, then ";" or the end
)

type chunkState uint8

const (
	csSize    chunkState = iota // hex digits
	csExt                       // after the size: BWS and extensions up to CR
	csSizeLF                    // CR seen, LF expected
	csData                      // chunk data
	csDataCR                    // CR expected after data
	csDataLF                    // LF expected after data
	csTrailer                   // trailer lines up to the empty line
	csDone
)

// NewChunked returns a decoder for a chunked body.
func NewChunked() *Chunked { return &Chunked{} }

// Direct reports the bytes left in the current chunk's data.
func (d *Chunked) Direct() int64 {
	if d.state == csData {
		return d.size
	}
	return 0
}

// Advance records n data bytes read directly.
func (d *Chunked) Advance(n int) {
	d.size -= int64(n)
	if d.size == 0 {
		d.state = csDataCR
	}
}

// EOF: a chunked body must end with its last chunk.
func (d *Chunked) EOF() error {
	if d.state == csDone {
		return nil
	}
	return io.ErrUnexpectedEOF
}

func hexValue(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Decode consumes framing and returns the data that follows it.
func (d *Chunked) Decode(in []byte) ([]byte, int, error) {
	i := 0
	for i < len(in) {
		c := in[i]
		switch d.state {
		case csSize:
			if v := hexValue(c); v >= 0 {
				if d.size > (1<<63-1)>>4 {
					return nil, i, framingError("chunk size overflows")
				}
				d.size = d.size<<4 | int64(v)
				d.digits++
				i++
				d.line++
				continue
			}
			if d.digits == 0 {
				return nil, i, framingError("chunk size is not hexadecimal")
			}
			d.state = csExt
			continue // look at c again as part of the extension
		case csExt:
			i++
			d.line++
			if d.line > MaxChunkLineBytes {
				return nil, i, framingError("chunk line too long")
			}
			if err := d.extByte(c); err != nil {
				return nil, i, err
			}
		case csSizeLF:
			if c != '\n' {
				return nil, i, framingError("bare CR in chunk line")
			}
			i++
			d.line, d.digits = 0, 0
			if d.size == 0 {
				d.state = csTrailer
			} else {
				d.state = csData
			}
		case csData:
			n := int(min(int64(len(in)-i), d.size))
			d.size -= int64(n)
			if d.size == 0 {
				d.state = csDataCR
			}
			return in[i : i+n], i + n, nil
		case csDataCR:
			if c != '\r' {
				return nil, i, framingError("chunk data not followed by CRLF")
			}
			i++
			d.state = csDataLF
		case csDataLF:
			if c != '\n' {
				return nil, i, framingError("chunk data not followed by CRLF")
			}
			i++
			d.state = csSize
		case csTrailer:
			n, done, err := d.trailerLine(in[i:])
			i += n
			if err != nil {
				return nil, i, err
			}
			if done {
				d.state = csDone
				return nil, i, io.EOF
			}
		case csDone:
			return nil, i, io.EOF
		}
	}
	if d.state == csDone {
		return nil, i, io.EOF
	}
	return nil, i, nil
}

// extByte checks one byte after the chunk size against the extension
// grammar. The line ends at CR; a bare LF or any control character is an
// error.
func (d *Chunked) extByte(c byte) error {
	if d.ext == extQuoted || d.ext == extEscape {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return framingError("control character in chunk extension")
		}
		switch {
		case d.ext == extEscape:
			d.ext = extQuoted
		case c == '\\':
			d.ext = extEscape
		case c == '"':
			d.ext = extAfterValue
		}
		return nil
	}
	ws := c == ' ' || c == '\t'
	switch {
	case c == '\n':
		return framingError("bare LF in chunk line")
	case c == '\r':
		if d.ext == extValueStart || (d.ext == extName && d.nameLen == 0) {
			return framingError("incomplete chunk extension")
		}
		d.state, d.ext, d.nameLen = csSizeLF, extBeforeSemi, 0
		return nil
	}
	switch d.ext {
	case extBeforeSemi, extAfterValue:
		switch {
		case ws:
		case c == ';':
			d.ext, d.nameLen = extName, 0
		default:
			return framingError("invalid character after chunk size")
		}
	case extName:
		switch {
		case tokenChars[c]:
			d.nameLen++
		case ws && d.nameLen == 0:
		case ws:
			d.ext = extAfterName
		case c == '=' && d.nameLen > 0:
			d.ext = extValueStart
		case c == ';' && d.nameLen > 0:
			d.nameLen = 0
		default:
			return framingError("invalid chunk extension name")
		}
	case extAfterName:
		switch {
		case ws:
		case c == '=':
			d.ext = extValueStart
		case c == ';':
			d.ext, d.nameLen = extName, 0
		default:
			return framingError("invalid chunk extension")
		}
	case extValueStart:
		switch {
		case ws:
		case c == '"':
			d.ext = extQuoted
		case tokenChars[c]:
			d.ext = extValue
		default:
			return framingError("invalid chunk extension value")
		}
	case extValue:
		switch {
		case tokenChars[c]:
		case ws:
			d.ext = extAfterValue
		case c == ';':
			d.ext, d.nameLen = extName, 0
		default:
			return framingError("invalid chunk extension value")
		}
	}
	return nil
}

// trailerLine consumes at most one trailer line from in. It reports how
// much it consumed and whether that line was the empty one that ends the
// body.
func (d *Chunked) trailerLine(in []byte) (int, bool, error) {
	max := d.MaxTrailerBytes
	if max == 0 {
		max = DefaultTrailerBytes
	}
	lf := bytes.IndexByte(in, '\n')
	if lf < 0 {
		d.pending = append(d.pending, in...)
		d.line += len(in)
		if d.line > max {
			return len(in), false, framingError("trailer section too large")
		}
		return len(in), false, nil
	}
	line := in[:lf]
	if len(d.pending) > 0 {
		line = append(d.pending, line...)
		d.pending = d.pending[:0]
	}
	d.line += lf + 1
	if d.line > max {
		return lf + 1, false, framingError("trailer section too large")
	}
	if len(line) == 0 || line[len(line)-1] != '\r' {
		return lf + 1, false, framingError("bare LF in trailer section")
	}
	line = line[:len(line)-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return lf + 1, false, framingError("bare CR in trailer section")
	}
	if len(line) == 0 {
		return lf + 1, true, nil
	}
	name, value, err := SplitField(line)
	if err != nil {
		return lf + 1, false, err
	}
	if d.Trailer == nil {
		d.Trailer = make(http.Header)
	}
	AddField(d.Trailer, name, value)
	return lf + 1, false, nil
}
