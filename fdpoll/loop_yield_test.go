package fdpoll

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A loop whose tasks wait only for its own timers (or sockets) parks
// without yielding first: nothing another goroutine would post back is to
// be expected, and a yield costs a thread wake-up.
func TestLoopParksWithoutYieldWhenNoGoroutinePosts(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	inTask(t, l, func(ctx context.Context) error {
		// The task itself was posted by this goroutine: let that pass.
		if err := sleepTimes(ctx, 2*crossWindow, 100*time.Microsecond); err != nil {
			return err
		}
		before := l.yields
		if err := sleepTimes(ctx, 50, 100*time.Microsecond); err != nil {
			return err
		}
		if n := l.yields - before; n != 0 {
			t.Errorf("%d yields over 50 sleeps on loop timers", n)
		}
		return nil
	})
}

// A loop that another goroutine keeps posting work to yields before it
// parks, so that the goroutine's answer is picked up without a wake-up.
func TestLoopYieldsWhileGoroutinesPost(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	req := make(chan *Future[int])
	defer close(req)
	go func() {
		for f := range req {
			f.Complete(1, nil)
		}
	}()
	inTask(t, l, func(ctx context.Context) error {
		before := l.yields
		for range 50 {
			f := NewFuture[int]()
			req <- f
			if _, err := Await(ctx, f); err != nil {
				return err
			}
		}
		if n := l.yields - before; n < 25 {
			t.Errorf("%d yields over 50 answers from another goroutine", n)
		}
		return nil
	})
}

// A timer about to fire is met by yielding rather than parking, whoever
// posts.
func TestLoopYieldsForATimerAboutToFire(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	inTask(t, l, func(ctx context.Context) error {
		// The task itself was posted: let that pass.
		if err := sleepTimes(ctx, 2*crossWindow, 100*time.Microsecond); err != nil {
			return err
		}
		before := l.yields
		if err := sleepTimes(ctx, 50, 10*time.Microsecond); err != nil {
			return err
		}
		if n := l.yields - before; n < 25 {
			t.Errorf("%d yields over 50 sleeps of 10µs", n)
		}
		return nil
	})
}

// A loop whose last poll found several sockets ready is busy with traffic
// that is likely to go on: it yields before parking, and the next poll
// collects more at once (a server under load). One that found a single
// socket ready parks at once.
func TestLoopYieldsAfterABusyPoll(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	var peers [2]int
	var conns [2]*Conn
	for i := range peers {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.NewConn(fds[0], "unix")
		if err != nil {
			t.Fatal(err)
		}
		peers[i], conns[i] = fds[1], c
		t.Cleanup(func() { c.Close(); unix.Close(fds[1]) })
	}
	inTask(t, l, func(ctx context.Context) error {
		// The task itself was posted: let that pass.
		if err := sleepTimes(ctx, 2*crossWindow, 100*time.Microsecond); err != nil {
			return err
		}
		buf := make([]byte, 8)
		round := func(ready int) (int, error) {
			before := l.yields
			for i := range ready {
				unix.Write(peers[i], []byte{1})
			}
			// The next poll finds the sockets readable; the loop then
			// parks until the timer.
			if err := Sleep(ctx, 200*time.Microsecond); err != nil {
				return 0, err
			}
			for i := range ready {
				if _, err := conns[i].Read(buf); err != nil {
					return 0, err
				}
			}
			return l.yields - before, nil
		}
		busy, quiet := 0, 0
		for range 20 {
			n, err := round(2)
			if err != nil {
				return err
			}
			busy += n
			if n, err = round(1); err != nil {
				return err
			}
			quiet += n
		}
		if busy < 10 {
			t.Errorf("%d yields after 20 polls that found 2 sockets ready", busy)
		}
		if quiet > 5 {
			t.Errorf("%d yields after 20 polls that found 1 socket ready", quiet)
		}
		return nil
	})
}

// sleepTimes sleeps n times for d on the task's loop timers.
func sleepTimes(ctx context.Context, n int, d time.Duration) error {
	for range n {
		if err := Sleep(ctx, d); err != nil {
			return err
		}
	}
	return nil
}
