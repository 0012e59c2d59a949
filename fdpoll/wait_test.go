package fdpoll

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitAllAndWaitAny(t *testing.T) {
	g := newGroup(t, 1)
	check := func(ctx context.Context) {
		a, b, c := NewFuture[int](), NewFuture[string](), NewFuture[int]()
		next := make(chan struct{})
		go func() {
			time.Sleep(5 * time.Millisecond)
			b.Complete("b", nil)
			<-next
			time.Sleep(5 * time.Millisecond)
			a.Complete(1, errors.New("a failed")) // an error still counts as done
			c.Complete(3, nil)
		}()
		i, err := WaitAny(ctx, a, b, c)
		if i != 1 || err != nil {
			t.Errorf("WaitAny = %d, %v; want 1", i, err)
		}
		close(next)
		if err := WaitAll(ctx, a, b, c); err != nil {
			t.Errorf("WaitAll = %v", err)
		}
		if !a.Done() || !b.Done() || !c.Done() {
			t.Error("WaitAll returned before all were done")
		}
		// Already done: lowest index.
		if i, err := WaitAny(ctx, NewFuture[int](), c, a); i != 1 || err != nil {
			t.Errorf("WaitAny on done = %d, %v", i, err)
		}
		// Deadlines.
		never := NewFuture[int]()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		if err := WaitAll(dctx, a, never); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitAll past deadline = %v", err)
		}
		if i, err := WaitAny(dctx, never, NewFuture[int]()); i != -1 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitAny past deadline = %d, %v", i, err)
		}
		if _, err := WaitAny(ctx); err == nil {
			t.Error("WaitAny() with no futures succeeded")
		}
	}
	t.Run("goroutine", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		check(ctx)
	})
	t.Run("task", func(t *testing.T) {
		inTask(t, g.Loop(0), func(ctx context.Context) error { check(ctx); return nil })
	})
}

// A future waited on repeatedly by WaitAny that gives up must not keep the
// abandoned waiters.
func TestWaitAnyDoesNotAccumulateWaiters(t *testing.T) {
	g := newGroup(t, 1)
	long := NewFuture[int]()
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		for i := range 100 {
			short := NewFuture[int]()
			short.Complete(i, nil)
			if _, err := WaitAny(ctx, long, short); err != nil {
				return err
			}
			dctx, cancel := context.WithTimeout(ctx, time.Microsecond)
			Await(dctx, long)
			cancel()
		}
		return nil
	})
	s := long.core.lock()
	n := 0
	for w := long.core.waiters.head; w != nil; w = w.next {
		n++
	}
	long.core.unlock(s)
	if n != 0 {
		t.Fatalf("%d abandoned waiters left on the future", n)
	}
}

func TestSleep(t *testing.T) {
	g := newGroup(t, 1)
	for _, where := range []string{"goroutine", "task"} {
		t.Run(where, func(t *testing.T) {
			body := func(ctx context.Context) error {
				start := time.Now()
				if err := Sleep(ctx, 20*time.Millisecond); err != nil {
					return err
				}
				if d := time.Since(start); d < 20*time.Millisecond {
					t.Errorf("slept %v", d)
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
				defer cancel()
				if err := Sleep(cctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Sleep past ctx deadline = %v", err)
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

// The loop never blocks: while one task waits for blocking work run by Go,
// another task's timers keep firing.
func TestTimersFireWhileGoWorkRuns(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	var ticks atomic.Int32
	stop := NewFuture[struct{}]()
	ticker := l.Spawn(context.Background(), func(ctx context.Context) error {
		for !stop.Done() {
			if err := Sleep(ctx, 5*time.Millisecond); err != nil {
				return err
			}
			ticks.Add(1)
		}
		return nil
	})
	inTask(t, l, func(ctx context.Context) error {
		_, err := Await(ctx, Go(ctx, func(context.Context) (int, error) {
			time.Sleep(200 * time.Millisecond) // blocking
			return 0, nil
		}))
		return err
	})
	stop.Complete(struct{}{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Await(ctx, ticker); err != nil {
		t.Fatal(err)
	}
	if n := ticks.Load(); n < 10 {
		t.Fatalf("only %d ticks of 5ms during 200ms of blocking work", n)
	}
}

func TestGo(t *testing.T) {
	g := newGroup(t, 1)
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		v, err := Await(ctx, Go(ctx, func(context.Context) (string, error) { return "ok", nil }))
		if v != "ok" || err != nil {
			t.Errorf("Go = %q, %v", v, err)
		}
		_, err = Await(ctx, Go(ctx, func(context.Context) (int, error) { panic("bad") }))
		var pe *PanicError
		if !errors.As(err, &pe) || pe.Value != "bad" {
			t.Errorf("panicking Go = %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ran := false
		_, err = Await(ctx, Go(cctx, func(context.Context) (int, error) { ran = true; return 0, nil }))
		if !errors.Is(err, context.Canceled) || ran {
			t.Errorf("Go with cancelled ctx = %v, ran %v", err, ran)
		}
		return nil
	})
}

func TestGoIsBounded(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	n := 2 * DefaultMaxWorkers
	fs := make([]Waitable, n)
	ctx := context.Background()
	for i := range fs {
		fs[i] = Go(ctx, func(context.Context) (int, error) {
			r := running.Add(1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			if r == DefaultMaxWorkers {
				once.Do(func() { close(release) })
			}
			<-release
			running.Add(-1)
			return 0, nil
		})
	}
	wctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if err := WaitAll(wctx, fs...); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > DefaultMaxWorkers {
		t.Fatalf("%d functions ran at once, bound is %d", p, DefaultMaxWorkers)
	}
}
