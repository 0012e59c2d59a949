package fdpoll

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestFutureFirstCompletionWins(t *testing.T) {
	f := NewFuture[int]()
	if f.Done() {
		t.Fatal("new future is done")
	}
	if _, err := f.Result(); err != ErrNotDone {
		t.Fatalf("Result before completion: %v, want ErrNotDone", err)
	}
	if !f.Complete(1, nil) {
		t.Fatal("first Complete returned false")
	}
	if f.Complete(2, errors.New("late")) {
		t.Fatal("second Complete returned true")
	}
	if v, err := f.Result(); v != 1 || err != nil {
		t.Fatalf("Result = %v, %v; want 1, nil", v, err)
	}
}

func TestFutureConcurrentComplete(t *testing.T) {
	for range 100 {
		f := NewFuture[int]()
		var wg sync.WaitGroup
		wins := make(chan int, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f.Complete(i, nil) {
					wins <- i
				}
			}()
		}
		wg.Wait()
		close(wins)
		var n, winner int
		for w := range wins {
			n++
			winner = w
		}
		if v, _ := f.Result(); n != 1 || v != winner {
			t.Fatalf("%d winners, value %d, winner %d", n, v, winner)
		}
	}
}

func TestAwaitDoneDoesNotAllocate(t *testing.T) {
	f := Completed(7, nil)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if v, err := Await(ctx, f); v != 7 || err != nil {
			t.Fatal(v, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Await of a done future allocates %v times", allocs)
	}
	g := newGroup(t, 1)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		allocs := testing.AllocsPerRun(1000, func() { Await(ctx, f) })
		if allocs != 0 {
			t.Errorf("Await of a done future in a task allocates %v times", allocs)
		}
		return nil
	})
}

func TestAwaitBlocksPlainGoroutine(t *testing.T) {
	f := NewFuture[string]()
	go func() {
		time.Sleep(20 * time.Millisecond)
		f.Complete("hi", nil)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	v, err := Await(ctx, f)
	if v != "hi" || err != nil {
		t.Fatalf("Await = %q, %v", v, err)
	}
}

func TestAwaitContextCancelPlainGoroutine(t *testing.T) {
	f := NewFuture[int]()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Await(ctx, f); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Await took %v", d)
	}
	// The abandoned waiter must not break a later completion.
	f.Complete(1, nil)
	if v, err := Await(context.Background(), f); v != 1 || err != nil {
		t.Fatal(v, err)
	}
}

func TestFutureErrorPassesThrough(t *testing.T) {
	boom := errors.New("boom")
	f := Failed[int](boom)
	if _, err := Await(context.Background(), f); err != boom {
		t.Fatalf("err = %v", err)
	}
	if f.Err() != boom {
		t.Fatalf("Err = %v", f.Err())
	}
}

func TestOnComplete(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)

	// From a plain goroutine: fn runs on a goroutine of its own.
	f := NewFuture[int]()
	got := make(chan int, 1)
	f.OnComplete(func(v int, err error) { got <- v })
	f.Complete(5, nil)
	select {
	case v := <-got:
		if v != 5 {
			t.Fatal(v)
		}
	case <-time.After(testTimeout):
		t.Fatal("callback did not run")
	}

	// From a task: fn runs later on the same loop, even when the future is
	// completed from another goroutine.
	f2 := NewFuture[int]()
	onLoop := make(chan bool, 2)
	inTask(t, l, func(ctx context.Context) error {
		f2.OnComplete(func(v int, err error) { onLoop <- l.onLoop() && LoopOf(ctx) == l })
		Completed(1, nil).OnComplete(func(int, error) { onLoop <- l.onLoop() })
		return nil
	})
	go f2.Complete(1, nil)
	for range 2 {
		select {
		case ok := <-onLoop:
			if !ok {
				t.Fatal("callback ran off its loop")
			}
		case <-time.After(testTimeout):
			t.Fatal("callback did not run")
		}
	}
}

// A future is Done by the time anything woken by its completion runs.
func TestDoneBeforeWaitersWake(t *testing.T) {
	g := newGroup(t, 2)
	for _, where := range []string{"task", "goroutine"} {
		t.Run(where, func(t *testing.T) {
			body := func(ctx context.Context) error {
				for range 2000 {
					f := NewFuture[int]()
					go f.Complete(1, nil)
					if _, err := Await(ctx, f); err != nil {
						return err
					}
					if !f.Done() {
						t.Fatal("Await returned while the future was not Done")
					}
				}
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
