// Package wsgiinput streams HTTP/1.1 message bodies in from a connection,
// a piece at a time, with real flow control.
//
// The name comes from WSGI's wsgi.input: the request body a server hands an
// application as a stream rather than a buffer.
//
// An Input is the buffered input side of a connection; the server parses
// request heads out of it, the HTTP client response heads. A Decoder takes
// the body framing off — Content-Length, chunked (with extensions and
// trailers) or read-until-close — fed bytes as they arrive, never needing the
// whole body. A Body joins the two into an io.ReadCloser: Read inside a task
// suspends the task until data arrives, in a plain goroutine it blocks, and
// Next offers the same as a future. Nothing reads the socket unless a reader
// asks for body bytes, so a handler that does not read stops the connection
// from reading, and an upload of any size passes through the Input's fixed
// buffer.
//
// Framing is parsed strictly (RFC 9112): a malformed or ambiguous body
// yields a *FramingError, after which the connection must not be used for
// another message.
package wsgiinput
