package pgasync_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// A fakeServer is a scripted PostgreSQL server for fault injection: it
// speaks just enough of the protocol to get a client connected, then does
// what the test says with its queries. It never stands in for the real
// server in the other tests.
type fakeServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn

	refuseTLS bool                                    // answer 'N' to SSLRequest
	stall     bool                                    // accept, then never answer
	onQuery   func(c net.Conn, typ byte, body []byte) // called for each message after start-up

	stallFirst atomic.Int32                          // how many connections (the first ones) to stall
	auth       func(c net.Conn, startup []byte) bool // replaces AuthenticationOk; false ends the connection
}

func startFake(t *testing.T, configure func(*fakeServer)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln}
	configure(s)
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) dsn(params ...string) string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	dsn := "postgres://fake@127.0.0.1:" + port + "/db?connect_timeout=1"
	for _, p := range params {
		dsn += "&" + p
	}
	return dsn
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

func (s *fakeServer) serve(c net.Conn) {
	if s.stall || s.stallFirst.Add(-1) >= 0 {
		io.Copy(io.Discard, c)
		return
	}
	var startup []byte
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		code := binary.BigEndian.Uint32(hdr[4:])
		rest := make([]byte, n-8)
		if _, err := io.ReadFull(c, rest); err != nil {
			return
		}
		switch code {
		case 80877103: // SSLRequest
			if s.refuseTLS {
				c.Write([]byte{'N'})
				continue
			}
			return
		case 80877102: // CancelRequest
			return
		}
		startup = rest
		break // StartupMessage
	}
	var out []byte
	if s.auth != nil {
		if !s.auth(c, startup) {
			return
		}
	} else {
		out = append(out, 'R', 0, 0, 0, 8, 0, 0, 0, 0) // AuthenticationOk
	}
	out = append(out, 'K', 0, 0, 0, 12, 0, 0, 0, 42, 0, 0, 0, 7)
	out = append(out, 'Z', 0, 0, 0, 5, 'I')
	c.Write(out)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint32(hdr[1:]))-4)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		if s.onQuery != nil {
			s.onQuery(c, hdr[0], body)
		}
	}
}

// msg frames a backend message.
func msg(typ byte, body ...byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// Malformed replies break the connection with a *ProtocolError; the
// request fails with ErrConnLost, nothing panics or leaks.
func TestMalformedServerReplies(t *testing.T) {
	for name, reply := range map[string][]byte{
		"negative length":          {'Z', 0xff, 0xff, 0xff, 0xff},
		"length below four":        {'C', 0, 0, 0, 2},
		"unknown message":          msg('~', 1, 2, 3),
		"row description too long": msg('T', 0, 5, 'a', 0),
		"data row overflow":        append(msg('T', 0, 0), msg('D', 0, 1, 0x7f, 0xff, 0xff, 0xff)...),
		"truncated error":          msg('E', 'S', 'E', 'R'),
		"ready without status":     append(msg('C', 'S', 'E', 'L', 0), msg('Z')...),
		"command tag without nul":  msg('C', 'S', 'E', 'L'),
		"copy in for a query":      msg('G', 0, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			s := startFake(t, func(s *fakeServer) {
				s.onQuery = func(c net.Conn, typ byte, body []byte) {
					if typ == 'Q' {
						c.Write(reply)
					}
				}
			})
			p := newPoolDSN(t, 1, s.dsn())
			ctx := testCtx(t)
			_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
			var pe *pgasync.ProtocolError
			if errors.Is(err, pgasync.ErrCopyStatement) {
				return // the request's own clear error; the connection is dropped
			}
			if !errors.Is(err, pgasync.ErrConnLost) || !errors.As(err, &pe) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

// A server that accepts but never answers: the connect times out
// (connect_timeout=1), the request fails with a ConnError, and the next
// request fails at once during the backoff.
func TestStalledServer(t *testing.T) {
	leakCheck(t)
	s := startFake(t, func(s *fakeServer) { s.stall = true })
	p := newPoolDSN(t, 1, s.dsn())
	ctx := testCtx(t)
	start := time.Now()
	_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
	var ce *pgasync.ConnError
	if !errors.As(err, &ce) || ce.Op != "connect" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("connect gave up after %v, want about connect_timeout=1s", d)
	}
	start = time.Now()
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1")); !errors.As(err, &ce) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("during backoff: %v after %v", err, time.Since(start))
	}
}

// A server that stops answering after start-up: the caller's context
// bounds the wait, a CancelRequest is attempted, Close does not hang.
func TestServerStallsMidQuery(t *testing.T) {
	leakCheck(t)
	s := startFake(t, func(s *fakeServer) {})
	p := newPoolDSN(t, 1, s.dsn())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	start := time.Now()
	p.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestTLSRefusedByServer(t *testing.T) {
	leakCheck(t)
	s := startFake(t, func(s *fakeServer) {
		s.refuseTLS = true
		s.onQuery = func(c net.Conn, typ byte, body []byte) {
			if typ == 'Q' {
				c.Write(append(msg('C', []byte("SELECT 1\x00")...), msg('Z', 'I')...))
			}
		}
	})
	ctx := testCtx(t)
	p := newPoolDSN(t, 1, s.dsn("sslmode=require"))
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1")); !errors.Is(err, pgasync.ErrTLSRefused) {
		t.Fatalf("sslmode=require: got %v", err)
	}
	// prefer falls back to a plain connection.
	p = newPoolDSN(t, 1, s.dsn("sslmode=prefer"))
	tag, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
	if err != nil || tag.String() != "SELECT 1" {
		t.Fatalf("sslmode=prefer: %v %v", tag, err)
	}
}

// A huge declared message length is refused before any allocation.
func TestOversizedMessage(t *testing.T) {
	s := startFake(t, func(s *fakeServer) {
		s.onQuery = func(c net.Conn, typ byte, body []byte) {
			if typ == 'Q' {
				c.Write([]byte{'D', 0x7f, 0xff, 0xff, 0xff})
			}
		}
	})
	p := newPoolDSN(t, 1, s.dsn())
	ctx := testCtx(t)
	_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
	var pe *pgasync.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
}
