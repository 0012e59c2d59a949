package fdpoll

import (
	"context"
	"testing"
	"time"
)

// A loop whose tasks wait only for its own timers (or sockets) parks
// without yielding first: nothing another goroutine would post back is to
// be expected, and a yield costs a thread wake-up.
func TestLoopParksWithoutYieldWhenNoGoroutinePosts(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	inTask(t, l, func(ctx context.Context) error {
		// The task itself was posted by this goroutine: let that pass.
		for range 2 * crossWindow {
			if err := Sleep(ctx, 100*time.Microsecond); err != nil {
				return err
			}
		}
		before := l.yields
		for range 50 {
			if err := Sleep(ctx, 100*time.Microsecond); err != nil {
				return err
			}
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
		for range 2 * crossWindow {
			if err := Sleep(ctx, 100*time.Microsecond); err != nil {
				return err
			}
		}
		before := l.yields
		for range 50 {
			if err := Sleep(ctx, 10*time.Microsecond); err != nil {
				return err
			}
		}
		if n := l.yields - before; n < 25 {
			t.Errorf("%d yields over 50 sleeps of 10µs", n)
		}
		return nil
	})
}
