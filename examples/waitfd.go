package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// waitFDDemo shows the raw readiness handle: one task waits on a pipe with a
// timeout while another task of the same loop keeps ticking, then a writer
// goroutine makes the pipe readable.
func waitFDDemo(ctx context.Context, g *fdpoll.Group, out io.Writer) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	defer w.Close()
	fd := int(r.Fd())
	l := g.Loop(0)

	stop := fdpoll.NewFuture[struct{}]()
	ticks := 0
	ticker := l.Spawn(ctx, func(ctx context.Context) error {
		for !stop.Done() {
			if err := fdpoll.Sleep(ctx, 10*time.Millisecond); err != nil {
				return err
			}
			ticks++ // same loop as the waiter: no lock needed
		}
		return nil
	})

	waiter := l.Spawn(ctx, func(ctx context.Context) error {
		defer stop.Complete(struct{}{}, nil)
		start := time.Now()
		err := fdpoll.WaitFD(ctx, fd, fdpoll.Readable, 50*time.Millisecond)
		fmt.Fprintf(out, "waitfd: empty pipe, 50ms timeout: %v after %v (ticker ran %d times meanwhile)\n",
			err, time.Since(start).Round(time.Millisecond), ticks)

		go func() {
			time.Sleep(30 * time.Millisecond)
			w.Write([]byte("hello from another goroutine"))
		}()
		start = time.Now()
		if err := fdpoll.WaitFD(ctx, fd, fdpoll.Readable, time.Second); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := r.Read(buf)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "waitfd: readable after %v: %q\n", time.Since(start).Round(time.Millisecond), buf[:n])
		return nil
	})
	if err := fdpoll.WaitAll(ctx, waiter, ticker); err != nil {
		return err
	}
	if err := waiter.Err(); err != nil {
		return err
	}
	return ticker.Err()
}
