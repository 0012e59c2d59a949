package wsgiinput

import "errors"

// A FramingError reports a body whose framing breaks RFC 9112: a bad or
// overflowing chunk size, a missing or bare line ending, an oversized chunk
// line or trailer section, a malformed trailer field. Nothing after it on
// the same connection can be trusted to be a message boundary.
type FramingError struct {
	Reason string
}

func (e *FramingError) Error() string { return "wsgiinput: malformed body framing: " + e.Reason }

func framingError(reason string) error { return &FramingError{Reason: reason} }

// ErrBodyReadAfterClose is returned by Read on a Body that was closed, the
// same value as net/http's http.ErrBodyReadAfterClose.
var ErrBodyReadAfterClose = errors.New("http: invalid Read on closed Body")
