package fdpoll

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	unix.SetNonblock(fds[1], true)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func TestWaitFD(t *testing.T) {
	g := newGroup(t, 1)
	for _, where := range []string{"task", "goroutine"} {
		t.Run(where, func(t *testing.T) {
			r, w := pipe(t)
			body := func(ctx context.Context) error {
				// Nothing to read yet: times out.
				start := time.Now()
				if err := WaitFD(ctx, r, Readable, 20*time.Millisecond); err != ErrTimeout {
					t.Errorf("WaitFD on empty pipe = %v, want ErrTimeout", err)
				}
				if d := time.Since(start); d < 20*time.Millisecond {
					t.Errorf("timed out after %v", d)
				}
				var ne interface{ Timeout() bool }
				if !errors.As(ErrTimeout, &ne) || !ne.Timeout() || !errors.Is(ErrTimeout, os.ErrDeadlineExceeded) {
					t.Error("ErrTimeout is not a timeout error")
				}
				// A write from elsewhere makes it readable.
				go func() {
					time.Sleep(10 * time.Millisecond)
					unix.Write(w, []byte("x"))
				}()
				if err := WaitFD(ctx, r, Readable, 10*time.Second); err != nil {
					t.Errorf("WaitFD readable = %v", err)
				}
				var buf [1]byte
				if n, _ := unix.Read(r, buf[:]); n != 1 {
					t.Errorf("read %d bytes", n)
				}
				// An empty pipe is writable at once.
				if err := WaitFD(ctx, w, Writable, time.Second); err != nil {
					t.Errorf("WaitFD writable = %v", err)
				}
				// ctx cancellation.
				cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
				defer cancel()
				if err := WaitFD(cctx, r, Readable, 0); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("WaitFD past ctx deadline = %v", err)
				}
				// Two waits on the same fd at once.
				f1 := Go(ctx, func(ctx context.Context) (int, error) { return 0, WaitFD(ctx, r, Readable, 10*time.Second) })
				go func() {
					time.Sleep(10 * time.Millisecond)
					unix.Write(w, []byte("y"))
				}()
				if err := WaitFD(ctx, r, Readable, 10*time.Second); err != nil {
					t.Errorf("second WaitFD = %v", err)
				}
				if _, err := Await(ctx, f1); err != nil {
					t.Errorf("first WaitFD = %v", err)
				}
				// Peer closed: ready (hang-up), read reports EOF.
				return nil
			}
			if where == "task" {
				inTask(t, g.Loop(0), body)
			} else if err := body(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWaitFDBadInput(t *testing.T) {
	g := newGroup(t, 1)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		if err := WaitFD(ctx, 1<<20, Readable, time.Second); !errors.Is(err, unix.EBADF) {
			t.Errorf("WaitFD on a closed fd = %v, want EBADF", err)
		}
		if err := WaitFD(ctx, 0, 0, time.Second); err == nil {
			t.Error("WaitFD with no events succeeded")
		}
		f, err := os.CreateTemp(t.TempDir(), "f")
		if err != nil {
			return err
		}
		defer f.Close()
		if err := WaitFD(ctx, int(f.Fd()), Readable|Writable, time.Second); err != nil {
			t.Errorf("WaitFD on a regular file = %v, want ready", err)
		}
		return nil
	})
}

func TestWaitFDHangup(t *testing.T) {
	g := newGroup(t, 1)
	var fds [2]int
	if err := unix.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		go func() {
			time.Sleep(10 * time.Millisecond)
			unix.Close(fds[1])
		}()
		return WaitFD(ctx, fds[0], Readable, 10*time.Second)
	})
}
