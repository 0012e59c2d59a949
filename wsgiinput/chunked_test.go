package wsgiinput

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// decodeAll feeds in to d in pieces of at most step bytes, the way a
// connection delivers them, and returns the payload, the bytes left after
// the body, and the error.
func decodeAll(d Decoder, in string, step int) (string, string, error) {
	var out strings.Builder
	buf := []byte{}
	rest := in
	for {
		if len(buf) == 0 || step > 0 {
			n := min(step, len(rest))
			if step <= 0 {
				n = len(rest)
			}
			buf = append(buf, rest[:n]...)
			rest = rest[n:]
		}
		for len(buf) > 0 {
			data, consumed, err := d.Decode(buf)
			out.Write(data)
			buf = buf[consumed:]
			if err == io.EOF {
				return out.String(), string(buf) + rest, nil
			}
			if err != nil {
				return out.String(), "", err
			}
			if consumed == 0 {
				break
			}
		}
		if len(rest) == 0 {
			return out.String(), "", d.EOF()
		}
	}
}

func TestChunkedValid(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, after string
		trailer               map[string]string
	}{
		{"simple", "5\r\nhello\r\n0\r\n\r\n", "hello", "", nil},
		{"two chunks", "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nNEXT", "abcdefg", "NEXT", nil},
		{"uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", "", nil},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", "", nil},
		{"extensions", "5;a=b;c\r\nhello\r\n0;last\r\n\r\n", "hello", "", nil},
		{"extension with spaces", "5 ; name = value ; x\r\nhello\r\n0\r\n\r\n", "hello", "", nil},
		{"quoted extension", "5;q=\"a \\\" ;b\"\r\nhello\r\n0\r\n\r\n", "hello", "", nil},
		{"trailers", "5\r\nhello\r\n0\r\nX-Sum: 42\r\nx-other:  v \r\n\r\n", "hello", "", map[string]string{"X-Sum": "42", "X-Other": "v"}},
		{"empty body", "0\r\n\r\n", "", "", nil},
	} {
		for _, step := range []int{0, 1, 2, 3, 7} {
			d := NewChunked()
			got, after, err := decodeAll(d, tc.in, step)
			if err != nil || got != tc.want || after != tc.after {
				t.Errorf("%s (step %d): got %q, after %q, err %v", tc.name, step, got, after, err)
				continue
			}
			for k, v := range tc.trailer {
				if d.Trailer.Get(k) != v {
					t.Errorf("%s: trailer %s = %q, want %q", tc.name, k, d.Trailer.Get(k), v)
				}
			}
		}
	}
}

func TestChunkedMalformed(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"not hex", "x\r\n"},
		{"empty size", "\r\nhello"},
		{"junk after size", "5x\r\nhello\r\n0\r\n\r\n"},
		{"negative", "-5\r\nhello\r\n0\r\n\r\n"},
		{"size with 0x", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"overflow", "8000000000000000\r\n"},
		{"huge overflow", "ffffffffffffffffff\r\n"},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
		{"bare CR after size", "5\rhello\r\n0\r\n\r\n"},
		{"data not followed by CRLF", "5\r\nhelloX\r\n0\r\n\r\n"},
		{"data followed by bare LF", "5\r\nhello\n0\r\n\r\n"},
		{"chunk longer than declared", "3\r\nhello\r\n0\r\n\r\n"},
		{"control char in extension", "5;a=\x01\r\nhello\r\n0\r\n\r\n"},
		{"semicolon without name", "5;\r\nhello\r\n0\r\n\r\n"},
		{"equals without value", "5;a=\r\nhello\r\n0\r\n\r\n"},
		{"bad extension name", "5;a@b\r\nhello\r\n0\r\n\r\n"},
		{"line too long", "5;" + strings.Repeat("a", MaxChunkLineBytes) + "\r\nhello\r\n0\r\n\r\n"},
		{"bare LF in trailer", "0\r\nX: y\n\r\n"},
		{"bare LF ending trailers", "0\r\n\n"},
		{"bare CR in trailer", "0\r\nX: a\rb\r\n\r\n"},
		{"obs-fold in trailer", "0\r\nX: a\r\n b\r\n\r\n"},
		{"space before colon in trailer", "0\r\nX : a\r\n\r\n"},
		{"trailer without colon", "0\r\nnocolon\r\n\r\n"},
		{"ctl in trailer value", "0\r\nX: a\x00b\r\n\r\n"},
		{"trailer too large", "0\r\nX: " + strings.Repeat("v", DefaultTrailerBytes) + "\r\n\r\n"},
	} {
		for _, step := range []int{0, 1, 5} {
			_, _, err := decodeAll(NewChunked(), tc.in, step)
			var fe *FramingError
			if !errors.As(err, &fe) {
				t.Errorf("%s (step %d): err = %v, want *FramingError", tc.name, step, err)
			}
		}
	}
}

func TestChunkedTruncated(t *testing.T) {
	for _, in := range []string{"", "5", "5\r\nhel", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n", "0\r\nX: y\r\n"} {
		if _, _, err := decodeAll(NewChunked(), in, 0); err != io.ErrUnexpectedEOF {
			t.Errorf("%q: err = %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

func TestContentLengthAndUntilClose(t *testing.T) {
	for _, step := range []int{0, 1, 3} {
		got, after, err := decodeAll(ContentLength(5), "helloNEXT", step)
		if got != "hello" || after != "NEXT" || err != nil {
			t.Errorf("ContentLength (step %d): %q %q %v", step, got, after, err)
		}
		if _, _, err := decodeAll(ContentLength(5), "hel", step); err != io.ErrUnexpectedEOF {
			t.Errorf("short ContentLength: %v", err)
		}
		got, _, err = decodeAll(UntilClose(), "all of it", step)
		if got != "all of it" || err != nil {
			t.Errorf("UntilClose: %q %v", got, err)
		}
	}
	if got, _, err := decodeAll(ContentLength(0), "NEXT", 0); got != "" || err != nil {
		t.Errorf("ContentLength(0): %q %v", got, err)
	}
}

func TestSplitField(t *testing.T) {
	for _, tc := range []struct {
		line, name, value string
		ok                bool
	}{
		{"Host: example.com", "Host", "example.com", true},
		{"X:  spaced \t", "X", "spaced", true},
		{"Empty:", "Empty", "", true},
		{"Host : x", "", "", false},
		{" Host: x", "", "", false},
		{"Bad Name: x", "", "", false},
		{"X: a\x7fb", "", "", false},
		{"X: tab\tinside", "X", "tab\tinside", true},
		{": x", "", "", false},
		{"NoColon", "", "", false},
	} {
		name, value, err := SplitField([]byte(tc.line))
		if (err == nil) != tc.ok || string(name) != tc.name || string(value) != tc.value {
			t.Errorf("SplitField(%q) = %q, %q, %v", tc.line, name, value, err)
		}
	}
}

func FuzzChunked(f *testing.F) {
	f.Add("5\r\nhello\r\n0\r\n\r\n", 3)
	f.Add("5;a=\"b\"\r\nhello\r\n0\r\nX: y\r\n\r\n", 1)
	f.Fuzz(func(t *testing.T, in string, step int) {
		step = step%16 + 1
		whole, _, errWhole := decodeAll(NewChunked(), in, 0)
		split, _, errSplit := decodeAll(NewChunked(), in, step)
		if (errWhole == nil) != (errSplit == nil) || (errWhole == nil && whole != split) {
			t.Fatalf("whole: %q %v; in steps of %d: %q %v", whole, errWhole, step, split, errSplit)
		}
		if len(whole) > len(in) {
			t.Fatalf("payload longer than input")
		}
	})
}
