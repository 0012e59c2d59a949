package fdpoll

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// OnDone calls f when a task's context ends (the task cancelled or
// returning), not after stop, at once for a context already done, and
// never for one that cannot end; other contexts go through
// context.AfterFunc.
func TestOnDone(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var fired, stoppedFired atomic.Int32
	var stopped, stopAfterFire bool
	running := make(chan context.Context, 1)
	victim := l.Spawn(context.Background(), func(ctx context.Context) error {
		OnDone(ctx, func() { fired.Add(1) })
		stop := OnDone(ctx, func() { stoppedFired.Add(1) })
		stopped = stop()
		running <- ctx
		return Sleep(ctx, time.Hour)
	})
	tctx := <-running
	CancelTask(tctx)
	if _, err := Await(ctx, victim); err == nil {
		t.Fatal("cancelled task returned nil")
	}
	if fired.Load() != 1 || stoppedFired.Load() != 0 || !stopped {
		t.Fatalf("fired %d, stopped one fired %d, stop() = %v", fired.Load(), stoppedFired.Load(), stopped)
	}

	// A task's context ends when the task returns.
	var atReturn atomic.Int32
	var stopFn func() bool
	if _, err := Await(ctx, l.Spawn(context.Background(), func(ctx context.Context) error {
		stopFn = OnDone(ctx, func() { atReturn.Add(1) })
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	stopAfterFire = stopFn()
	if atReturn.Load() != 1 || stopAfterFire {
		t.Fatalf("at return: fired %d, stop() after firing = %v", atReturn.Load(), stopAfterFire)
	}

	// A task's context already done: called before OnDone returns.
	now := false
	if _, err := Await(ctx, l.Spawn(context.Background(), func(ctx context.Context) error {
		CancelTask(ctx)
		OnDone(ctx, func() { now = true })
		if !now {
			t.Error("f not called before OnDone returned, for a task's context already done")
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}

	// Cannot end: nothing arranged.
	if OnDone(context.Background(), func() { t.Error("called for Background") })() {
		t.Error("stop reported undoing something for Background")
	}

	// Other contexts: like context.AfterFunc.
	other, cancelOther := context.WithCancel(context.Background())
	ch := make(chan struct{})
	OnDone(other, func() { close(ch) })
	cancelOther()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("f not called for a cancelled context")
	}
}

// Watching a task's context is cheaper than context.AfterFunc: two
// allocations for the watch and its stop function.
func TestOnDoneAllocs(t *testing.T) {
	g := newGroup(t, 1)
	var onDone, afterFunc float64
	_, err := Await(context.Background(), g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		f := func() {}
		onDone = testing.AllocsPerRun(100, func() { OnDone(ctx, f)() })
		afterFunc = testing.AllocsPerRun(100, func() { context.AfterFunc(ctx, f)() })
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if onDone > 2 || onDone >= afterFunc {
		t.Errorf("OnDone: %v allocs, context.AfterFunc: %v", onDone, afterFunc)
	}
}

// A task spawned with another task's context follows it: cancelled when
// the parent is, including when the parent was cancelled before the child
// first looked (the parent then cancels the child from inside the child's
// own Done or AfterFunc, which must not deadlock).
func TestTaskOfTaskFollowsParent(t *testing.T) {
	g := newGroup(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, observe := range []string{"Done", "AfterFunc"} {
		_, err := Await(ctx, g.Loop(0).Spawn(context.Background(), func(pctx context.Context) error {
			// Parent cancelled before the child looks.
			CancelTask(pctx)
			child := g.Loop(1).Spawn(pctx, func(cctx context.Context) error {
				switch observe {
				case "Done":
					<-cctx.Done()
				case "AfterFunc":
					fired := make(chan struct{})
					context.AfterFunc(cctx, func() { close(fired) })
					<-fired
				}
				return cctx.Err()
			})
			_, err := Await(context.Background(), child)
			if err == nil {
				t.Errorf("%s: child of a cancelled task not cancelled", observe)
			}
			return nil
		}))
		if err != nil {
			t.Fatal(observe, err)
		}
	}

	// Parent cancelled while the child waits.
	started := make(chan context.Context, 1)
	var childErr error
	parent := g.Loop(0).Spawn(context.Background(), func(pctx context.Context) error {
		child := g.Loop(1).Spawn(pctx, func(cctx context.Context) error {
			started <- pctx
			return Sleep(cctx, time.Hour)
		})
		_, childErr = Await(context.Background(), child)
		return nil
	})
	CancelTask(<-started)
	if _, err := Await(ctx, parent); err != nil {
		t.Fatal(err)
	}
	if childErr == nil {
		t.Error("child not cancelled with its parent")
	}
}
