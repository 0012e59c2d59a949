package fdpoll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listen starts a TCP listener on loopback whose accepted connections are
// handed to serve, each on its own goroutine; it is closed with the test.
func listen(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func echo(c net.Conn) { io.Copy(c, c) }

func dial(t *testing.T, ctx context.Context, addr string) *Conn {
	t.Helper()
	c, err := Await(ctx, Dial(ctx, "tcp", addr))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConnEcho(t *testing.T) {
	g := newGroup(t, 2)
	addr := listen(t, echo)
	body := func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		defer c.Close()
		if c.RemoteAddr().String() != addr {
			t.Errorf("RemoteAddr %v, want %s", c.RemoteAddr(), addr)
		}
		if !strings.HasPrefix(c.LocalAddr().String(), "127.0.0.1:") {
			t.Errorf("LocalAddr %v", c.LocalAddr())
		}
		for i := range 20 {
			msg := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
			if _, err := c.Write(msg); err != nil {
				return err
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				return err
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("echo %d differs", i)
			}
		}
		return nil
	}
	t.Run("task", func(t *testing.T) { inTask(t, g.Loop(0), body) })
	t.Run("goroutine", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := body(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("task of another loop", func(t *testing.T) {
		var c *Conn
		inTask(t, g.Loop(0), func(ctx context.Context) error { c = dial(t, ctx, addr); return nil })
		defer c.Close()
		inTask(t, g.Loop(1), func(ctx context.Context) error {
			if c.Loop() == LoopOf(ctx) {
				t.Fatal("same loop")
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			buf := make([]byte, 4)
			_, err := io.ReadFull(c, buf)
			return err
		})
	})
}

func TestConnReadDeadline(t *testing.T) {
	g := newGroup(t, 1)
	addr := listen(t, echo)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		start := time.Now()
		_, err := c.Read(make([]byte, 10))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past deadline = %v, want a timeout net.Error", err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("timed out after %v", d)
		}
		// Moving the deadline from another goroutine wakes a suspended Read.
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.SetReadDeadline(time.Now())
		}()
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after the deadline moved = %v", err)
		}
		// Clearing it makes the connection usable again.
		c.SetDeadline(time.Time{})
		c.Write([]byte("x"))
		_, err = io.ReadFull(c, make([]byte, 1))
		return err
	})
}

func TestConnCloseWakesReader(t *testing.T) {
	g := newGroup(t, 1)
	addr := listen(t, echo)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.Close()
		}()
		_, err := c.Read(make([]byte, 10))
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on closed conn = %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write on closed conn = %v", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close = %v", err)
		}
		return nil
	})
}

func TestConnPeerClose(t *testing.T) {
	g := newGroup(t, 1)
	addr := listen(t, func(c net.Conn) { c.Write([]byte("bye")) })
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		defer c.Close()
		b, err := io.ReadAll(c)
		if string(b) != "bye" || err != nil {
			t.Fatalf("ReadAll = %q, %v", b, err)
		}
		// Writing to a closed peer fails eventually (EPIPE or ECONNRESET).
		deadline := time.Now().Add(testTimeout)
		for time.Now().Before(deadline) {
			if _, err := c.Write([]byte("x")); err != nil {
				var oe *net.OpError
				if !errors.As(err, &oe) {
					t.Fatalf("write error %v is not a *net.OpError", err)
				}
				return nil
			}
			Sleep(ctx, time.Millisecond)
		}
		t.Fatal("writes to a closed peer never failed")
		return nil
	})
}

// Output of many tasks written during one loop iteration leaves in one
// write syscall.
func TestConnCoalescesWrites(t *testing.T) {
	g := newGroup(t, 1)
	got := make(chan []byte, 1)
	addr := listen(t, func(c net.Conn) {
		b, _ := io.ReadAll(io.LimitReader(c, 100*10))
		got <- b
	})
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		defer c.Close()
		before := c.wcalls
		var fs []Waitable
		for i := range 100 {
			fs = append(fs, LoopOf(ctx).Spawn(ctx, func(context.Context) error {
				_, err := c.Write([]byte{'0' + byte(i%10), 1, 2, 3, 4, 5, 6, 7, 8, '\n'})
				return err
			}))
		}
		if err := WaitAll(ctx, fs...); err != nil {
			return err
		}
		Sleep(ctx, 10*time.Millisecond)
		if n := c.wcalls - before; n != 1 {
			t.Errorf("100 writes in one iteration took %d write syscalls, want 1", n)
		}
		return nil
	})
	select {
	case b := <-got:
		if len(b) != 1000 {
			t.Fatalf("peer got %d bytes", len(b))
		}
	case <-time.After(testTimeout):
		t.Fatal("peer got nothing")
	}
}

// A writer faster than its peer is held back: the output buffer stays
// bounded, the writer waits, and every byte arrives.
func TestConnWriteBackpressure(t *testing.T) {
	g := newGroup(t, 1)
	const total = 32 << 20
	startReading := make(chan struct{})
	sum := make(chan [32]byte, 1)
	addr := listen(t, func(c net.Conn) {
		<-startReading
		h := sha256.New()
		io.Copy(h, c)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		sum <- s
	})
	want := sha256.New()
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		var maxBuf int
		writer := LoopOf(ctx).Spawn(ctx, func(ctx context.Context) error {
			chunk := make([]byte, 1<<20)
			for i := 0; i < total/len(chunk); i++ {
				for j := range chunk {
					chunk[j] = byte(i + j)
				}
				want.Write(chunk)
				if _, err := c.Write(chunk); err != nil {
					return err
				}
				maxBuf = max(maxBuf, c.Buffered())
			}
			return c.Close()
		})
		// The peer does not read yet: the writer must stall, not finish.
		Sleep(ctx, 100*time.Millisecond)
		if writer.Done() {
			t.Error("writer finished 32 MiB while the peer read nothing")
		}
		close(startReading)
		_, err := Await(ctx, writer)
		if maxBuf > highWater {
			t.Errorf("output buffer reached %d bytes, high-water mark is %d", maxBuf, highWater)
		}
		return err
	})
	select {
	case s := <-sum:
		var w [32]byte
		copy(w[:], want.Sum(nil))
		if s != w {
			t.Fatal("peer received different bytes")
		}
	case <-time.After(testTimeout):
		t.Fatal("peer did not finish")
	}
}

// Close sends output accepted before it.
func TestConnCloseFlushesOutput(t *testing.T) {
	g := newGroup(t, 1)
	got := make(chan int, 1)
	addr := listen(t, func(c net.Conn) {
		time.Sleep(50 * time.Millisecond)
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	})
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		for range 16 {
			if _, err := c.Write(make([]byte, 60<<10)); err != nil {
				return err
			}
		}
		return c.Close()
	})
	select {
	case n := <-got:
		if n != 16*60<<10 {
			t.Fatalf("peer got %d bytes, want %d", n, 16*60<<10)
		}
	case <-time.After(testTimeout):
		t.Fatal("peer got nothing")
	}
}

func TestConnCloseWrite(t *testing.T) {
	g := newGroup(t, 1)
	addr := listen(t, echo)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		defer c.Close()
		c.Write([]byte("half"))
		if err := c.CloseWrite(); err != nil {
			return err
		}
		b, err := io.ReadAll(c) // the echo server sees EOF and closes
		if string(b) != "half" || err != nil {
			t.Fatalf("ReadAll = %q, %v", b, err)
		}
		if _, err := c.Write([]byte("x")); err == nil {
			t.Error("Write after CloseWrite succeeded")
		}
		return nil
	})
}

func TestConnFullDuplexFromTwoTasks(t *testing.T) {
	g := newGroup(t, 1)
	addr := listen(t, echo)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c := dial(t, ctx, addr)
		defer c.Close()
		const n = 4 << 20
		reader := LoopOf(ctx).Spawn(ctx, func(context.Context) error {
			got, err := io.ReadAll(io.LimitReader(c, n))
			if len(got) != n {
				t.Errorf("read %d bytes", len(got))
			}
			return err
		})
		buf := make([]byte, 4096)
		for sent := 0; sent < n; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		_, err := Await(ctx, reader)
		return err
	})
}

func TestConnOnLoopOutsideTask(t *testing.T) {
	g := newGroup(t, 1)
	addr := listen(t, echo)
	var c *Conn
	inTask(t, g.Loop(0), func(ctx context.Context) error { c = dial(t, ctx, addr); return nil })
	defer c.Close()
	got := make(chan error, 1)
	g.Loop(0).Post(func() {
		_, err := c.Read(make([]byte, 1))
		got <- err
	})
	select {
	case err := <-got:
		if !errors.Is(err, ErrNotInTask) {
			t.Fatalf("Read on the loop goroutine = %v, want ErrNotInTask", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Read blocked the loop")
	}
}

func TestDialErrors(t *testing.T) {
	g := newGroup(t, 1)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		// A port nobody listens on.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		_, err := Await(ctx, Dial(ctx, "tcp", addr))
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "dial" || !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("dial refused = %v", err)
		}
		for _, tc := range []struct{ network, addr string }{
			{"tcp", "localhost:80"},
			{"tcp", "127.0.0.1"},
			{"tcp4", "[::1]:80"},
			{"ip", "127.0.0.1:53"},
			{"unix", ""},
		} {
			if _, err := Await(ctx, Dial(ctx, tc.network, tc.addr)); err == nil {
				t.Errorf("Dial(%q, %q) succeeded", tc.network, tc.addr)
			}
		}
		return nil
	})
}

// A connect that never completes ends with its context.
func TestDialContextTimeout(t *testing.T) {
	g := newGroup(t, 1)
	// A listener with a full backlog that never accepts: further SYNs are
	// dropped, so connects hang.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	addr := net.JoinHostPort("127.0.0.1", itoa(sa.(*unix.SockaddrInet4).Port))
	fds := countFDs(t)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		var conns []*Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 8 {
			dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			c, err := Await(dctx, Dial(dctx, "tcp", addr))
			cancel()
			if err != nil {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("hanging dial = %v, want deadline exceeded", err)
				}
				return nil
			}
			conns = append(conns, c)
		}
		t.Error("connects to a full backlog never hung")
		return nil
	})
	// The failed dial's socket is closed.
	time.Sleep(50 * time.Millisecond)
	if n := countFDs(t); n > fds {
		t.Errorf("%d fds open after the dials, %d before", n, fds)
	}
}

func TestDialUnix(t *testing.T) {
	g := newGroup(t, 1)
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			echo(c)
			c.Close()
		}
	}()
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c, err := Await(ctx, Dial(ctx, "unix", path))
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write([]byte("unix"))
		b := make([]byte, 4)
		_, err = io.ReadFull(c, b)
		if string(b) != "unix" {
			t.Errorf("got %q", b)
		}
		return err
	})
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
