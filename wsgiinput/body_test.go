package wsgiinput

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"golang.org/x/sys/unix"
)

// pipeConn returns a Conn on l and the raw fd of its peer, a socket pair.
func pipeConn(t *testing.T, l *fdpoll.Loop) (*fdpoll.Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.NewConn(fds[0], "unix")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	return c, fds[1]
}

func group(t *testing.T) *fdpoll.Group {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func inTask(t *testing.T, l *fdpoll.Loop, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := fdpoll.Await(ctx, l.Spawn(ctx, fn)); err != nil {
		t.Fatal(err)
	}
}

// writeLater writes the pieces to fd with pauses, as a client would.
func writeLater(fd int, pieces ...string) {
	go func() {
		for _, p := range pieces {
			time.Sleep(2 * time.Millisecond)
			unix.Write(fd, []byte(p))
		}
	}()
}

func TestBodyReadSuspendsAndDecodes(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	for _, tc := range []struct {
		name   string
		dec    func() Decoder
		pieces []string
		want   string
		after  string
	}{
		{"content-length", func() Decoder { return ContentLength(11) }, []string{"hello", " wor", "ldNEXT"}, "hello world", "NEXT"},
		{"chunked", func() Decoder { return NewChunked() }, []string{"5\r\nhel", "lo\r\n6\r\n world\r", "\n0\r\n\r\nNEXT"}, "hello world", "NEXT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pipeConn(t, l)
			in := NewInput(c, 4096)
			b := NewBody(in, tc.dec(), l)
			writeLater(peer, tc.pieces...)
			inTask(t, l, func(ctx context.Context) error {
				got, err := io.ReadAll(b)
				if string(got) != tc.want || err != nil {
					t.Errorf("ReadAll = %q, %v", got, err)
				}
				if !b.Done() {
					t.Error("not Done after EOF")
				}
				// What follows the body stays in the Input.
				for len(in.Buffered()) < len(tc.after) {
					if err := in.Fill(); err != nil {
						return err
					}
				}
				if string(in.Buffered()) != tc.after {
					t.Errorf("left %q, want %q", in.Buffered(), tc.after)
				}
				return nil
			})
		})
	}
}

// A large read of a Content-Length body goes straight into the reader's
// buffer; ending exactly there must still end the body.
func TestBodyDirectReadEndsBody(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	c, peer := pipeConn(t, l)
	b := NewBody(NewInput(c, 4096), ContentLength(10000), l)
	payload := strings.Repeat("d", 10000)
	writeLater(peer, payload[:100], payload[100:])
	done := make(chan error, 1)
	go func() {
		// A plain goroutine: Read blocks.
		buf := make([]byte, 20000)
		var got []byte
		for {
			n, err := b.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				if string(got) != payload {
					done <- errors.New("payload differs")
					return
				}
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not see the end of a body read directly")
	}
}

func TestBodyNextFuture(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	c, peer := pipeConn(t, l)
	b := NewBody(NewInput(c, 4096), NewChunked(), l)
	writeLater(peer, "3\r\nabc\r\n", "2\r\nde\r\n", "0\r\n\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got strings.Builder
	for {
		piece, err := fdpoll.Await(ctx, b.Next(ctx))
		got.Write(piece)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != "abcde" {
		t.Fatalf("got %q", got.String())
	}
}

// A Next whose context ends first fails with the context's error, and the
// piece it was waiting for is not lost.
func TestBodyNextCancelKeepsData(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	c, peer := pipeConn(t, l)
	b := NewBody(NewInput(c, 4096), ContentLength(5), l)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := fdpoll.Await(context.Background(), b.Next(short)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next past its deadline = %v", err)
	}
	unix.Write(peer, []byte("hello"))
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	piece, err := fdpoll.Await(ctx, b.Next(ctx))
	if string(piece) != "hello" {
		t.Fatalf("after a cancelled Next got %q, %v", piece, err)
	}
}

func TestBodyLimitCloseAndErrors(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	t.Run("limit", func(t *testing.T) {
		c, peer := pipeConn(t, l)
		b := NewBody(NewInput(c, 4096), NewChunked(), l)
		b.SetLimit(4)
		unix.Write(peer, []byte("8\r\n12345678\r\n0\r\n\r\n"))
		_, err := io.ReadAll(b)
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) || mbe.Limit != 4 {
			t.Fatalf("err = %v, want *http.MaxBytesError", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		c, peer := pipeConn(t, l)
		b := NewBody(NewInput(c, 4096), ContentLength(10), l)
		unix.Write(peer, []byte("short"))
		unix.Shutdown(peer, unix.SHUT_WR)
		if _, err := io.ReadAll(b); err != io.ErrUnexpectedEOF {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("framing", func(t *testing.T) {
		c, peer := pipeConn(t, l)
		b := NewBody(NewInput(c, 4096), NewChunked(), l)
		unix.Write(peer, []byte("zz\r\n"))
		_, err := io.ReadAll(b)
		var fe *FramingError
		if !errors.As(err, &fe) || b.Err() == nil {
			t.Fatalf("err = %v, want *FramingError", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, _ := pipeConn(t, l)
		b := NewBody(NewInput(c, 4096), ContentLength(10), l)
		b.Close()
		if _, err := b.Read(make([]byte, 1)); err != ErrBodyReadAfterClose {
			t.Fatalf("Read after Close = %v", err)
		}
	})
	t.Run("until close", func(t *testing.T) {
		c, peer := pipeConn(t, l)
		b := NewBody(NewInput(c, 4096), UntilClose(), l)
		unix.Write(peer, []byte("everything"))
		unix.Shutdown(peer, unix.SHUT_WR)
		got, err := io.ReadAll(b)
		if string(got) != "everything" || err != nil {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

func TestBodyBeforeWaitTrailerDiscard(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	c, peer := pipeConn(t, l)
	b := NewBody(NewInput(c, 4096), NewChunked(), l)
	tr := http.Header{}
	b.FillTrailer(tr)
	called := 0
	b.BeforeWait(func() {
		called++
		unix.Write(peer, []byte("4\r\ndata\r\n0\r\nX-Sum: 9\r\n\r\n"))
	})
	done, err := b.Discard(1 << 20)
	if !done || err != nil {
		t.Fatalf("Discard = %v, %v", done, err)
	}
	if called != 1 {
		t.Fatalf("BeforeWait ran %d times", called)
	}
	if tr.Get("X-Sum") != "9" || b.Trailer().Get("X-Sum") != "9" {
		t.Fatalf("trailer %v", tr)
	}
}

func TestBodyWriteToLarge(t *testing.T) {
	g := group(t)
	l := g.Loop(0)
	c, peer := pipeConn(t, l)
	const n = 8 << 20
	b := NewBody(NewInput(c, 4096), ContentLength(n), l)
	go func() {
		buf := bytes.Repeat([]byte("w"), 1<<20)
		for sent := 0; sent < n; sent += len(buf) {
			for off := 0; off < len(buf); {
				m, err := unix.Write(peer, buf[off:])
				if err != nil {
					return
				}
				off += m
			}
		}
	}()
	var out bytes.Buffer
	got, err := b.WriteTo(&out)
	if got != n || err != nil || out.Len() != n {
		t.Fatalf("WriteTo = %d, %v", got, err)
	}
}
