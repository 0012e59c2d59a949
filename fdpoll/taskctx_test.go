package fdpoll

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey string

// A task's context behaves like one from context.WithCancel: cancelled when
// the task returns or its parent is, visible to derived contexts,
// context.AfterFunc and context.Cause, carrying the parent's values and
// deadline.
func TestTaskContextSemantics(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)

	parent, cancelParent := context.WithTimeout(context.WithValue(context.Background(), ctxKey("k"), "v"), time.Hour)
	defer cancelParent()
	var kept context.Context
	var child context.Context
	afterRan := make(chan struct{})
	first := l.Spawn(parent, func(ctx context.Context) error {
		if ctx.Value(ctxKey("k")) != "v" {
			t.Error("parent's value not visible")
		}
		if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
			t.Error("parent's deadline not visible")
		}
		if ctx.Err() != nil {
			t.Errorf("Err = %v while running", ctx.Err())
		}
		select {
		case <-ctx.Done():
			t.Error("Done closed while running")
		default:
		}
		var cancelChild context.CancelFunc
		child, cancelChild = context.WithCancel(ctx)
		_ = cancelChild
		context.AfterFunc(ctx, func() { close(afterRan) })
		kept = ctx
		return nil
	})
	if _, err := Await(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	// The task returned: its context is cancelled, and so is what derives
	// from it.
	select {
	case <-kept.Done():
	case <-time.After(testTimeout):
		t.Fatal("Done not closed after the task returned")
	}
	if !errors.Is(kept.Err(), context.Canceled) || !errors.Is(context.Cause(kept), context.Canceled) {
		t.Errorf("after return: Err %v, Cause %v", kept.Err(), context.Cause(kept))
	}
	select {
	case <-child.Done():
	case <-time.After(testTimeout):
		t.Fatal("derived context not cancelled")
	}
	select {
	case <-afterRan:
	case <-time.After(testTimeout):
		t.Fatal("context.AfterFunc did not run")
	}

	// The parent's cancellation reaches a running task, through Err, Done
	// and a derived context.
	p2, cancel2 := context.WithCancel(context.Background())
	seen := make(chan error, 3)
	f := l.Spawn(p2, func(ctx context.Context) error {
		d, cancel := context.WithCancel(ctx)
		defer cancel()
		if _, err := Await(ctx, NewFuture[int]()); err == nil {
			t.Error("Await returned without cancellation")
		}
		seen <- ctx.Err()
		<-ctx.Done() // closed already: must not block the loop
		seen <- d.Err()
		seen <- context.Cause(ctx)
		return nil
	})
	time.Sleep(10 * time.Millisecond)
	cancel2()
	if _, err := Await(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-seen; !errors.Is(err, context.Canceled) {
			t.Errorf("after the parent's cancel: %v", err)
		}
	}

	// A parent's deadline is reported as such.
	p3, cancel3 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel3()
	inTask(t, l, func(context.Context) error { return nil })
	f3 := l.Spawn(p3, func(ctx context.Context) error {
		_, err := Await(ctx, NewFuture[int]())
		return err
	})
	if _, err := Await(context.Background(), f3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("task under a deadline: %v", err)
	}
}

// A task that never observes its context does not allocate for it.
func TestUnobservedTaskContextIsFree(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	inTask(t, l, func(ctx context.Context) error {
		allocs := testing.AllocsPerRun(200, func() {
			f := l.Spawn(parent, func(context.Context) error { return nil })
			Await(ctx, f)
		})
		// The task itself, and nothing for its context.
		if allocs > 1 {
			t.Errorf("spawning and awaiting a task: %v allocations", allocs)
		}
		return nil
	})
}

func TestCancelTask(t *testing.T) {
	g := newGroup(t, 1)
	started := make(chan context.Context, 1)
	f := g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		started <- ctx
		_, err := Await(ctx, NewFuture[int]())
		return err
	})
	ctx := <-started
	time.Sleep(5 * time.Millisecond)
	if !CancelTask(ctx) {
		t.Fatal("CancelTask of a task context returned false")
	}
	if _, err := Await(context.Background(), f); !errors.Is(err, context.Canceled) {
		t.Fatalf("task after CancelTask: %v", err)
	}
	if CancelTask(context.Background()) {
		t.Fatal("CancelTask of a plain context returned true")
	}
}
