// Package server is yieldio's HTTP/1.1 server: it runs ordinary
// http.Handlers as tasks on fdpoll event loops.
//
// Each loop of the server's group has its own listening socket (SO_REUSEPORT
// on Linux) and its own connections. A connection waiting for a request holds
// no task, no coroutine and no buffer: when bytes arrive its loop starts a
// task, which parses every request that is buffered, runs the handler for
// each in order (pipelining), and ends when the socket has nothing more. The
// request's context carries the task, so fdpoll.Await(r.Context(), f) in a
// handler suspends only that handler; r.Body is a *wsgiinput.Body that
// reads the socket only as the handler reads it. Responses go into the
// connection's output buffer, which the loop flushes once per iteration for
// all the responses of that iteration.
//
// Malformed or ambiguous requests are answered with the status net/http or
// RFC 9112 calls for (400, 413, 414, 417, 431, 501, 505) and a closed
// connection; after a framing error nothing on the connection is parsed
// again.
//
// What a handler receives is its own, as with net/http: the *http.Request,
// its header map, URL, context and body wrapper are never reused, so a
// handler may hand r to a goroutine that outlives it. The ResponseWriter is
// different: net/http's contract ends its use when ServeHTTP returns, and
// the server then recycles what is behind it (the response's state and its
// header map) for a later response on the same loop. Calls on the
// ResponseWriter itself after the handler returned are refused (Write and
// Flush fail, WriteHeader is logged, Header returns a map of no response),
// but a handler must not keep the map w.Header() returned past its return,
// nor change it from a goroutine it leaves behind: it may by then be
// another response's.
package server
