package server

import (
	"net/http"
	"strconv"
)

// A requestError is a request the server answers with an error status, then
// closes the connection: malformed or hostile input, or input it will not
// handle.
type requestError struct {
	code   int
	reason string
}

func (e *requestError) Error() string {
	return strconv.Itoa(e.code) + " " + http.StatusText(e.code) + ": " + e.reason
}

func badRequest(reason string) *requestError {
	return &requestError{code: http.StatusBadRequest, reason: reason}
}

// errorResponse is the complete response for e, in the form net/http uses.
func errorResponse(e *requestError) []byte {
	text := http.StatusText(e.code)
	b := make([]byte, 0, 128+len(e.reason))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(e.code), 10)
	b = append(b, ' ')
	b = append(b, text...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"...)
	b = strconv.AppendInt(b, int64(e.code), 10)
	b = append(b, ' ')
	b = append(b, text...)
	if e.reason != "" {
		b = append(b, ": "...)
		b = append(b, e.reason...)
	}
	return b
}
