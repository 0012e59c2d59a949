package fdpoll

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSpawnReturnsError(t *testing.T) {
	g := newGroup(t, 2)
	boom := errors.New("boom")
	f := g.Spawn(context.Background(), func(ctx context.Context) error { return boom })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Await(ctx, f); err != boom {
		t.Fatalf("err = %v", err)
	}
}

func TestTaskSuspendsAndOthersRun(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	f := NewFuture[int]()
	var order []string // touched only by tasks of one loop: no lock
	a := l.Spawn(context.Background(), func(ctx context.Context) error {
		order = append(order, "a waits")
		v, err := Await(ctx, f)
		order = append(order, "a resumed")
		if v != 42 {
			t.Errorf("a got %d", v)
		}
		return err
	})
	b := l.Spawn(context.Background(), func(ctx context.Context) error {
		order = append(order, "b runs")
		f.Complete(42, nil)
		order = append(order, "b completed")
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := WaitAll(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	// Read order on the loop, where it was written.
	inTask(t, l, func(context.Context) error {
		want := "a waits,b runs,b completed,a resumed"
		if got := strings.Join(order, ","); got != want {
			t.Errorf("order %s, want %s", got, want)
		}
		return nil
	})
}

// Many tasks of one loop share plain variables without locks: -race must
// stay quiet because they only ever run on the loop goroutine.
func TestTasksOfOneLoopShareStateWithoutLocks(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	counter := 0
	shared := map[int]int{}
	gate := NewFuture[struct{}]()
	fs := make([]Waitable, 0, 1000)
	for i := range 1000 {
		fs = append(fs, l.Spawn(context.Background(), func(ctx context.Context) error {
			counter++
			if _, err := Await(ctx, gate); err != nil {
				return err
			}
			shared[i] = counter
			counter++
			return Sleep(ctx, time.Millisecond)
		}))
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		gate.Complete(struct{}{}, nil)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := WaitAll(ctx, fs...); err != nil {
		t.Fatal(err)
	}
	inTask(t, l, func(context.Context) error {
		if counter != 2000 || len(shared) != 1000 {
			t.Errorf("counter %d, shared %d", counter, len(shared))
		}
		return nil
	})
}

func TestPanicInTaskCompletesWithPanicError(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	f := l.Spawn(context.Background(), func(ctx context.Context) error {
		var m map[string]int
		m["x"] = 1 // nil map write
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := Await(ctx, f)
	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PanicError", err)
	}
	var rte runtime.Error
	if !errors.As(err, &rte) {
		t.Errorf("panic value %v is not unwrapped as runtime.Error", pe.Value)
	}
	if !strings.Contains(string(pe.Stack), "TestPanicInTaskCompletesWithPanicError") {
		t.Errorf("stack does not show the panicking function:\n%s", pe.Stack)
	}
	// The loop keeps running.
	inTask(t, l, func(ctx context.Context) error { return Sleep(ctx, time.Millisecond) })
}

func TestGoexitInTaskDoesNotKillLoop(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	f := l.Spawn(context.Background(), func(ctx context.Context) error {
		runtime.Goexit()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Await(ctx, f); err != errGoexit {
		t.Fatalf("err = %v, want errGoexit", err)
	}
	inTask(t, l, func(ctx context.Context) error {
		if !l.onLoop() {
			t.Error("task of the replacement loop goroutine is not on the loop")
		}
		return Sleep(ctx, time.Millisecond)
	})
}

func TestCancelWakesPendingAwait(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	never := NewFuture[int]()

	// Cancelling the parent cancels the task's own context.
	parent, cancel := context.WithCancel(context.Background())
	f := l.Spawn(parent, func(ctx context.Context) error {
		_, err := Await(ctx, never)
		return err
	})
	time.Sleep(10 * time.Millisecond)
	cancel()
	ctx, cancel2 := context.WithTimeout(context.Background(), testTimeout)
	defer cancel2()
	if _, err := Await(ctx, f); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}

	// A derived context with a deadline.
	inTask(t, l, func(ctx context.Context) error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		if _, err := Await(dctx, never); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
		// A context without a task, inside a task, still suspends the task.
		bctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel2()
		if _, err := Await(bctx, never); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
		return nil
	})
}

// A loop keeps running other tasks while one awaits with a context that
// carries no task: the caller is recognised by goroutine, not by context.
func TestAwaitWithForeignContextSuspendsTask(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	f := NewFuture[int]()
	a := l.Spawn(context.Background(), func(ctx context.Context) error {
		_, err := Await(context.Background(), f)
		return err
	})
	b := l.Spawn(context.Background(), func(ctx context.Context) error {
		f.Complete(1, nil) // runs only if a suspended instead of blocking the loop
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := WaitAll(ctx, a, b); err != nil {
		t.Fatal(err)
	}
}

// A task's context used from another goroutine makes that goroutine block,
// never switch the task's coroutine, even while the task itself awaits.
func TestTaskContextInOtherGoroutineBlocks(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	inTask(t, l, func(ctx context.Context) error {
		f1, f2 := NewFuture[int](), NewFuture[int]()
		done := Go(ctx, func(context.Context) (int, error) {
			// A worker goroutine with the task's context.
			return Await(ctx, f1)
		})
		go func() {
			time.Sleep(5 * time.Millisecond)
			f2.Complete(2, nil)
			time.Sleep(5 * time.Millisecond)
			f1.Complete(1, nil)
		}()
		if v, err := Await(ctx, f2); v != 2 || err != nil {
			t.Errorf("task: %v %v", v, err)
		}
		if v, err := Await(ctx, done); v != 1 || err != nil {
			t.Errorf("goroutine: %v %v", v, err)
		}
		if LoopOf(ctx) != l {
			t.Error("LoopOf(task ctx) is not the task's loop")
		}
		return nil
	})
	if LoopOf(context.Background()) != nil {
		t.Error("LoopOf(Background) is not nil")
	}
}

func TestAwaitOnLoopOutsideTaskFails(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	got := make(chan error, 1)
	l.Post(func() {
		_, err := Await(context.Background(), NewFuture[int]())
		got <- err
	})
	select {
	case err := <-got:
		if err != ErrNotInTask {
			t.Fatalf("err = %v, want ErrNotInTask", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Await on the loop goroutine blocked the loop")
	}
}

func TestCoroutinesAreReused(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	seen := map[uintptr]bool{}
	for range 50 {
		inTask(t, l, func(context.Context) error {
			seen[getg()] = true
			return nil
		})
	}
	if len(seen) != 1 {
		t.Fatalf("50 sequential tasks ran on %d coroutines, want 1", len(seen))
	}
}

func TestSpawnFromManyGoroutines(t *testing.T) {
	g := newGroup(t, 2)
	var n atomic.Int64
	fs := make(chan Waitable, 1000)
	for range 10 {
		go func() {
			for range 100 {
				fs <- g.Spawn(context.Background(), func(ctx context.Context) error {
					n.Add(1)
					return Sleep(ctx, time.Millisecond)
				})
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for range 1000 {
		if err := WaitAll(ctx, <-fs); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 1000 {
		t.Fatal(n.Load())
	}
}
