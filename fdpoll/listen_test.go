package fdpoll

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestListenAccept(t *testing.T) {
	g := newGroup(t, 2)
	l := g.Loop(0)
	ln, err := l.Listen("tcp", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := l.Spawn(context.Background(), func(ctx context.Context) error {
		for i := 0; i < 3; i++ {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			if c.(*Conn).Loop() != l {
				t.Error("accepted conn on another loop")
			}
			LoopOf(ctx).Spawn(ctx, func(context.Context) error {
				defer c.Close()
				_, err := io.Copy(c, c)
				return err
			})
		}
		return nil
	})
	for i := range 3 {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(testTimeout))
		c.Write([]byte{byte(i)})
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != byte(i) {
			t.Fatalf("echo %d: %v %v", i, b, err)
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Await(ctx, server); err != nil {
		t.Fatal(err)
	}
}

func TestListenerCloseWakesAccept(t *testing.T) {
	g := newGroup(t, 1)
	ln, err := g.Loop(0).Listen("tcp", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	acc := g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		_, err := ln.Accept()
		return err
	})
	time.Sleep(10 * time.Millisecond)
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Await(ctx, acc); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
}

// With SO_REUSEPORT every loop listens on the same port, and one listener
// can also hand connections to another loop.
func TestReusePortAndAcceptOn(t *testing.T) {
	g := newGroup(t, 2)
	a, err := g.Loop(0).Listen("tcp", "127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := g.Loop(1).Listen("tcp", a.Addr().String(), true)
	if err != nil {
		t.Fatalf("second SO_REUSEPORT listener: %v", err)
	}
	defer b.Close()
	go func() {
		for range 2 {
			if c, err := net.Dial("tcp", a.Addr().String()); err == nil {
				defer c.Close()
			}
		}
		time.Sleep(time.Second)
	}()
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		// Whichever listener got it, hand it to loop 1.
		f := Call(g.Loop(0), ctx, func(context.Context) (*Conn, error) { return a.AcceptOn(g.Loop(1)) })
		f2 := Call(g.Loop(1), ctx, func(context.Context) (*Conn, error) { return b.AcceptOn(g.Loop(1)) })
		i, err := WaitAny(ctx, f, f2)
		if err != nil {
			return err
		}
		c := []*Future[*Conn]{f, f2}[i]
		conn, err := c.Result()
		if err != nil {
			return err
		}
		defer conn.Close()
		if conn.Loop() != g.Loop(1) {
			t.Error("AcceptOn did not put the conn on the requested loop")
		}
		return nil
	})
}

func TestWhenReadableAndTryRead(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	ln, err := l.Listen("tcp", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := make(chan string, 4)
	inTask(t, l, func(ctx context.Context) error {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		conn := c.(*Conn)
		buf := make([]byte, 16)
		if _, err := conn.TryRead(buf); err != ErrWouldBlock {
			t.Errorf("TryRead on a quiet conn = %v, want ErrWouldBlock", err)
		}
		var onReadable func()
		onReadable = func() {
			n, err := conn.TryRead(buf)
			switch {
			case err == ErrWouldBlock:
				conn.WhenReadable(onReadable)
			case err != nil:
				got <- "err:" + err.Error()
				conn.Close()
			default:
				got <- string(buf[:n])
				conn.WhenReadable(onReadable)
			}
		}
		conn.WhenReadable(onReadable)
		return nil
	})
	client.Write([]byte("hello"))
	if s := <-got; s != "hello" {
		t.Fatalf("got %q", s)
	}
	client.Close()
	select {
	case s := <-got:
		if s != "err:EOF" {
			t.Fatalf("after close got %q", s)
		}
	case <-time.After(testTimeout):
		t.Fatal("no callback for end of stream")
	}
}

func TestLoopTimer(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	fired := make(chan time.Duration, 2)
	inTask(t, l, func(ctx context.Context) error {
		start := time.Now()
		l.AfterFunc(10*time.Millisecond, func() { fired <- time.Since(start) })
		stopped := l.AfterFunc(5*time.Millisecond, func() { fired <- -1 })
		if !stopped.Stop() {
			t.Error("Stop of a pending timer returned false")
		}
		if stopped.Stop() {
			t.Error("second Stop returned true")
		}
		return nil
	})
	select {
	case d := <-fired:
		if d < 10*time.Millisecond {
			t.Fatalf("fired after %v", d)
		}
	case <-time.After(testTimeout):
		t.Fatal("timer did not fire")
	}
	select {
	case <-fired:
		t.Fatal("stopped timer fired")
	case <-time.After(30 * time.Millisecond):
	}
	defer func() {
		if recover() == nil {
			t.Error("AfterFunc off the loop did not panic")
		}
	}()
	l.AfterFunc(time.Second, func() {})
}
