package fdpoll

import (
	"context"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestNewGroupSize(t *testing.T) {
	g := newGroup(t, 0)
	if g.Len() != runtime.GOMAXPROCS(0) {
		t.Fatalf("Len = %d, want GOMAXPROCS", g.Len())
	}
	for i := range g.Len() {
		if g.Loop(i).Index() != i || g.Loop(i).Group() != g {
			t.Fatal("loop index or group wrong")
		}
	}
	if Default() != Default() || Default().Len() < 1 {
		t.Fatal("Default is not one process-wide group")
	}
}

// Close cancels and wakes every task, closes every fd, stops every timer and
// joins every goroutine it started.
func TestGroupCloseLeavesNothingBehind(t *testing.T) {
	addr := listen(t, echo)
	fds, before := baseline(t)
	g, err := NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	never := NewFuture[int]()
	var results []Waitable
	started := make(chan struct{}, 16)
	for i := range 2 {
		l := g.Loop(i)
		// A task awaiting a future that never completes, with a context
		// that is never cancelled.
		results = append(results, l.Spawn(context.Background(), func(ctx context.Context) error {
			started <- struct{}{}
			_, err := Await(context.Background(), never)
			return err
		}))
		// A task suspended in a read on a connection.
		results = append(results, l.Spawn(context.Background(), func(ctx context.Context) error {
			c, err := Await(ctx, Dial(ctx, "tcp", addr))
			if err != nil {
				return err
			}
			started <- struct{}{}
			_, err = c.Read(make([]byte, 1))
			return err
		}))
		// A long sleep (a pending timer) and a pending Go.
		results = append(results, l.Spawn(context.Background(), func(ctx context.Context) error {
			started <- struct{}{}
			return Sleep(ctx, time.Hour)
		}))
		results = append(results, l.Spawn(context.Background(), func(ctx context.Context) error {
			started <- struct{}{}
			_, err := Await(ctx, Go(ctx, func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			}))
			return err
		}))
		// Idle coroutines in the pool.
		for range 10 {
			Await(context.Background(), l.Spawn(context.Background(), func(context.Context) error { return nil }))
		}
	}
	for range 8 {
		select {
		case <-started:
		case <-time.After(testTimeout):
			t.Fatal("tasks did not start")
		}
	}
	time.Sleep(20 * time.Millisecond) // let them suspend
	closed := make(chan error, 1)
	go func() { closed <- g.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not return")
	}
	for i, f := range results {
		if !f.Done() {
			t.Fatalf("task %d still pending after Close", i)
		}
		err := f.(*Future[struct{}]).Err()
		if err == nil {
			t.Errorf("task %d returned nil after Close", i)
		}
		if !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) && !errors.Is(err, net.ErrClosed) {
			t.Errorf("task %d: %v", i, err)
		}
	}
	// Work after Close fails fast.
	if _, err := Await(context.Background(), g.Spawn(context.Background(), func(context.Context) error { return nil })); err != ErrClosed {
		t.Errorf("Spawn after Close = %v, want ErrClosed", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	checkNoLeaks(t, fds, before)
}

func TestCloseFromOwnLoopFails(t *testing.T) {
	g := newGroup(t, 1)
	inTask(t, g.Loop(0), func(context.Context) error {
		if err := g.Close(); err == nil {
			t.Error("Close from the group's own loop succeeded")
		}
		return nil
	})
}
