package fdpoll

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestDialUDP(t *testing.T) {
	g := newGroup(t, 1)
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c, err := Await(ctx, Dial(ctx, "udp", srv.LocalAddr().String()))
		if err != nil {
			return err
		}
		defer c.Close()
		if _, ok := c.RemoteAddr().(*net.UDPAddr); !ok {
			t.Errorf("RemoteAddr is %T", c.RemoteAddr())
		}
		// Writes are datagrams, never merged even when issued together.
		c.Write([]byte("one"))
		c.Write([]byte("two"))
		buf := make([]byte, 2048)
		for _, want := range []string{"re:one", "re:two"} {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				return err
			}
			if string(buf[:n]) != want {
				t.Errorf("got %q, want %q", buf[:n], want)
			}
		}
		// A datagram from another source is not delivered.
		other, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer other.Close()
		other.WriteTo([]byte("forged"), c.LocalAddr())
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read a datagram from another source: %q, %v", buf[:n], err)
		}
		return nil
	})
}

func TestDialUDPRefused(t *testing.T) {
	g := newGroup(t, 1)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	addr := pc.LocalAddr().String()
	pc.Close()
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		c, err := Await(ctx, Dial(ctx, "udp", addr))
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write([]byte("anyone?"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 10))
		var oe *net.OpError
		if !errors.As(err, &oe) || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read after an ICMP port unreachable = %v, want connection refused", err)
		}
		return nil
	})
}
