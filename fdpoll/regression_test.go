//go:build linux

package fdpoll

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Regression: A task that calls runtime.Goexit (t.Fatal inside a task, say) while
// its loop is closing restarts serve, whose first poll blocks forever: the
// exit check only runs at the end of an iteration. Group.Close hangs.
func TestGoexitWhileClosingDoesNotHangClose(t *testing.T) {
	g, err := NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	never := NewFuture[int]()
	started := make(chan struct{})
	g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		close(started)
		// A wait that does not install the task-context watch (any wait
		// with a foreign ctx, Conn.Read, Accept...).
		if _, err := Await(context.Background(), never); err != nil {
			runtime.Goexit() // e.g. t.Fatalf("await: %v", err)
		}
		return nil
	})
	<-started
	time.Sleep(10 * time.Millisecond)
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Group.Close hung after a task called Goexit during close")
	}
}

// Regression: After a loop exits, loopG still holds its (dead) goroutine's
// descriptor address. The runtime reuses descriptors, so a new goroutine can
// be taken for that loop's goroutine: onLoop() is true, Spawn appends to the
// dead loop's run queue and the future never completes (want ErrClosed).
func TestClosedLoopIdentityIsNotReused(t *testing.T) {
	hits := 0
	for attempt := 0; attempt < 20; attempt++ {
		g, err := NewGroup(1)
		if err != nil {
			t.Fatal(err)
		}
		l := g.Loop(0)
		g.Close()
		res := make(chan error, 1)
		onLoop := make(chan bool, 1)
		go func() {
			onLoop <- l.onLoop()
			f := l.Spawn(context.Background(), func(context.Context) error { return nil })
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err := Await(ctx, f)
			res <- err
		}()
		on := <-onLoop
		err = <-res
		if on {
			hits++
			t.Logf("attempt %d: goroutine was taken for the closed loop; Spawn -> %v", attempt, err)
		}
		if !errors.Is(err, ErrClosed) {
			t.Errorf("attempt %d: Spawn on a closed loop: %v, want ErrClosed", attempt, err)
		}
	}
	if hits > 0 {
		t.Errorf("%d/20 fresh goroutines were treated as the goroutine of a closed loop", hits)
	}
}

// Regression: Same stale identity through the hint of a leaked task context: a plain
// goroutine's Await fails with ErrNotInTask instead of blocking.
func TestClosedLoopIdentityAwaitBlocks(t *testing.T) {
	bad := 0
	for attempt := 0; attempt < 20; attempt++ {
		g, err := NewGroup(1)
		if err != nil {
			t.Fatal(err)
		}
		var tctx context.Context
		inTask(t, g.Loop(0), func(ctx context.Context) error { tctx = ctx; return nil })
		g.Close()
		res := make(chan error, 1)
		go func() {
			f := NewFuture[int]()
			go func() { time.Sleep(time.Millisecond); f.Complete(1, nil) }()
			_, err := Await(context.WithoutCancel(tctx), f)
			res <- err
		}()
		if err := <-res; err != nil {
			bad++
			t.Logf("attempt %d: plain goroutine Await = %v", attempt, err)
		}
	}
	if bad > 0 {
		t.Errorf("%d/20 plain goroutines were refused as 'loop goroutine outside a task'", bad)
	}
}

// Regression: A posted function that exit() runs after the final iteration still sees
// itself "on the loop": whatever it schedules goes to l.runq, which is never
// run again. A Spawn from it never completes.
func TestSpawnFromFunctionRunAtExitFails(t *testing.T) {
	g, err := NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	l := g.Loop(0)
	spawned := make(chan *Future[struct{}], 1)
	started := make(chan struct{})
	l.Spawn(context.Background(), func(ctx context.Context) error {
		close(started)
		Await(ctx, NewFuture[int]()) // wakes when Close cancels the task
		// Another goroutine posts while the loop is in its last iteration
		// (the channel wait only makes the timing deterministic).
		posted := make(chan struct{})
		go func() {
			l.Post(func() {
				spawned <- l.Spawn(context.Background(), func(context.Context) error { return nil })
			})
			close(posted)
		}()
		<-posted
		return nil
	})
	<-started
	time.Sleep(10 * time.Millisecond)
	g.Close()
	f := <-spawned
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Await(ctx, f); !errors.Is(err, ErrClosed) {
		t.Fatalf("Spawn from a function run at loop exit: %v, want ErrClosed", err)
	}
}

// Regression: OnComplete called in a task: once the loop has exited, the callback is
// posted to a dead loop and silently dropped ("fn runs once" is broken), so
// anything chained on it never completes.
func TestOnCompleteRunsAfterLoopExit(t *testing.T) {
	g, err := NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFuture[int]()
	ran := make(chan struct{})
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		f.OnComplete(func(int, error) { close(ran) })
		return nil
	})
	g.Close()
	f.Complete(1, nil)
	select {
	case <-ran:
	case <-time.After(time.Second):
		t.Fatal("OnComplete callback never ran")
	}
}

// Regression: A pending WaitFD whose fd number is closed and reused (documented as
// allowed) clobbers the new owner: when the wait times out, removeWait ->
// update -> deregister does EPOLL_CTL_DEL on the fd number and sets
// l.fds[fd] = nil, unregistering a Conn that now owns that number. Its
// Reads never wake again.
func TestStaleWaitFDLeavesReusedFDAlone(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	var pp [2]int
	if err := unix.Pipe2(pp[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pp[1])
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[1])
	waited := l.Spawn(context.Background(), func(ctx context.Context) error {
		return WaitFD(ctx, pp[0], Readable, 100*time.Millisecond)
	})
	inTask(t, l, func(ctx context.Context) error {
		Sleep(ctx, 10*time.Millisecond) // WaitFD is watching pp[0]
		// The user closes pp[0]; the number is reused for a socket (dup3 makes
		// the reuse deterministic; close + accept/socket does the same).
		if err := unix.Dup3(sp[0], pp[0], unix.O_CLOEXEC); err != nil {
			return err
		}
		unix.Close(sp[0])
		c, err := l.NewConn(pp[0], "unix")
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := Await(ctx, waited); !errors.Is(err, errFDReused) {
			t.Errorf("WaitFD on an fd closed and reused by a Conn: %v, want errFDReused", err)
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			unix.Write(sp[1], []byte("hi"))
		}()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		if err != nil {
			t.Errorf("Read after the stale WaitFD timed out: n=%d err=%v (data was sent after 50ms)", n, err)
		}
		return nil
	})
}

// Regression: Listen on a closed loop: NewListener fails with ErrClosed and Listen
// does not close the socket it bound: the fd leaks and the port stays bound.
func TestListenOnClosedLoopClosesFD(t *testing.T) {
	g, err := NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	l := g.Loop(0)
	g.Close()
	before := countFDs(t)
	for range 10 {
		if _, err := l.Listen("tcp", "127.0.0.1:0", false); err == nil {
			t.Fatal("Listen on closed loop succeeded")
		}
	}
	if after := countFDs(t); after > before {
		t.Fatalf("Listen on a closed loop leaked %d fds", after-before)
	}
}

// Regression: Same root cause, other direction: a stale watch (its fd closed while a
// WaitFD was pending) stays in l.fds. A new, legitimate WaitFD on the reused
// number joins it; update sees want == interest and does nothing, but the
// kernel dropped the registration with the old file: the new wait never
// wakes although the new fd becomes readable.
func TestWaitFDOnReusedNumberWakes(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	var old, nw [2]int
	if err := unix.Pipe2(old[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(old[1])
	if err := unix.Pipe2(nw[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nw[1])
	stale := l.Spawn(context.Background(), func(ctx context.Context) error {
		return WaitFD(ctx, old[0], Readable, time.Second)
	})
	_ = stale
	inTask(t, l, func(ctx context.Context) error {
		Sleep(ctx, 10*time.Millisecond)
		// Close old[0]; its number now names the new pipe's read end.
		if err := unix.Dup3(nw[0], old[0], unix.O_CLOEXEC); err != nil {
			return err
		}
		unix.Close(nw[0])
		defer unix.Close(old[0])
		go func() {
			time.Sleep(20 * time.Millisecond)
			unix.Write(nw[1], []byte("x"))
		}()
		start := time.Now()
		err := WaitFD(ctx, old[0], Readable, 300*time.Millisecond)
		if err != nil {
			t.Errorf("WaitFD on a fresh, readable fd: %v after %v (data written after 20ms)", err, time.Since(start))
		}
		return nil
	})
}

// closeWithSlowLoop starts closing a new group of two loops whose loop 1
// is slow to finish (a task doing CPU work after cancellation), and returns
// it: for about 300 ms loop 0 has exited and loop 1 has not.
func closeWithSlowLoop(t *testing.T) *Group {
	t.Helper()
	g, err := NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	g.Loop(1).Spawn(context.Background(), func(ctx context.Context) error {
		close(started)
		Await(ctx, NewFuture[int]())
		time.Sleep(300 * time.Millisecond) // stands for CPU work
		return nil
	})
	<-started
	time.Sleep(10 * time.Millisecond)
	go g.Close()
	return g
}

// Regression: The stale identity also hits unrelated goroutines while a group is
// closing: an exited loop stays in the registry until *all* loops of its group
// exit, so a fresh goroutine that inherits its descriptor is "the loop
// goroutine" for current(nil): a plain Await fails with ErrNotInTask.
func TestClosingLoopIdentityDoesNotLeak(t *testing.T) {
	closeWithSlowLoop(t)
	var bad atomic.Int32
	deadline := time.Now().Add(250 * time.Millisecond)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				res := make(chan error, 1)
				go func() {
					// An unrelated plain goroutine, e.g. a net/http handler.
					_, err := Await(context.Background(), Completed(1, nil).thenLater())
					res <- err
				}()
				if err := <-res; err != nil {
					if bad.Add(1) == 1 {
						t.Logf("first error: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d unrelated goroutines got an error from Await (ErrNotInTask)", bad.Load())
	}
	time.Sleep(200 * time.Millisecond)
}

// thenLater returns a future completed by another goroutine shortly.
func (f *Future[T]) thenLater() *Future[T] {
	n := NewFuture[T]()
	go func() { time.Sleep(100 * time.Microsecond); n.Complete(f.Result()) }()
	return n
}

// Regression: Group.Close called from a Go function of the same group deadlocks:
// workers.close waits for every worker, including the caller.
func TestCloseFromWorkerFails(t *testing.T) {
	g, err := NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	var tctx context.Context
	inTask(t, g.Loop(0), func(ctx context.Context) error { tctx = ctx; return nil })
	f := Go(context.WithoutCancel(tctx), func(context.Context) (int, error) {
		return 0, g.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Await(ctx, f); err != errCloseFromWorker {
		t.Fatalf("Group.Close from a worker of the group: %v, want errCloseFromWorker", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// Regression: Same window, through callerLoop(): an unrelated goroutine's Dial is
// routed to the exited loop; Spawn/Call appends to its runq without any
// synchronisation with the dead loop goroutine (a race the detector sees)
// and the future never completes.
func TestClosingLoopDoesNotCaptureDial(t *testing.T) {
	addr := listen(t, echo)
	Default()
	closeWithSlowLoop(t)
	var hung, wrongLoop atomic.Int32
	deadline := time.Now().Add(250 * time.Millisecond)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				done := make(chan struct{})
				go func() {
					defer close(done)
					if l := callerLoop(); l == nil {
						return
					}
					wrongLoop.Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					c, err := Await(ctx, Dial(ctx, "tcp", addr))
					if err != nil {
						hung.Add(1) // ErrNotInTask; the Dial future itself never completes
					} else {
						c.Close()
					}
				}()
				<-done
			}
		}()
	}
	wg.Wait()
	if wrongLoop.Load() > 0 || hung.Load() > 0 {
		t.Errorf("unrelated goroutines: %d saw a closed loop as their own, %d Dial+Await failed", wrongLoop.Load(), hung.Load())
	}
}

// Regression: Complete wakes waiters before it publishes the done bit (unlock at the
// end). task.await trusts wokeBy == c and returns without touching c's lock,
// so a task can resume and see its awaited future as not done: right after
// Await returns, f.Done() is false and f.Result() is ErrNotDone; WaitAll
// returns nil while a future is not Done (this is the TestWaitAllAndWaitAny
// flake at -cpu 2).
func TestAwaitReturnsOnlyWhenDone(t *testing.T) {
	g := newGroup(t, 1)
	bad := 0
	for range 200 {
		inTask(t, g.Loop(0), func(ctx context.Context) error {
			f := NewFuture[int]()
			for range 64 { // more waiters behind the task's: a wider window
				go Await(context.Background(), f)
			}
			go func() { time.Sleep(time.Millisecond); f.Complete(1, nil) }()
			v, err := Await(ctx, f)
			if _, rerr := f.Result(); v != 1 || err != nil || !f.Done() || rerr != nil {
				bad++
				if bad == 1 {
					t.Logf("Await = %v, %v; then Done() = %v, Result err = %v", v, err, f.Done(), rerr)
				}
			}
			return nil
		})
	}
	if bad > 0 {
		t.Errorf("%d/200 Awaits returned before the future was Done", bad)
	}
}

// flipCtx reports an error from Err before its Done is closed, as a
// context does between being cancelled and its watchers running.
type flipCtx struct {
	context.Context
	flipped atomic.Bool
	done    chan struct{}
}

func (c *flipCtx) Done() <-chan struct{} { return c.done }
func (c *flipCtx) Err() error {
	if c.flipped.Load() {
		return context.Canceled
	}
	return nil
}

// A child task whose parent task's context has not yet noticed that its
// own parent was cancelled: cancelling the child asks the parent, which
// cancels itself and, through the child's subscription, the child again.
// That must not deadlock the child's loop.
func TestChildCancelReentersParent(t *testing.T) {
	g := newGroup(t, 2)
	outer := &flipCtx{Context: context.Background(), done: make(chan struct{})}
	defer close(outer.done)
	parentCtx := make(chan context.Context, 1)
	g.Loop(0).Spawn(outer, func(ctx context.Context) error {
		parentCtx <- ctx
		return Sleep(ctx, time.Hour)
	})
	p := <-parentCtx
	proceed := make(chan struct{})
	subscribed := make(chan struct{})
	child := g.Loop(1).Spawn(p, func(ctx context.Context) error {
		ctx.Done() // subscribes to p, and p to outer
		close(subscribed)
		<-proceed
		return nil // the task's end cancels its context
	})
	<-subscribed
	outer.flipped.Store(true)
	close(proceed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Await(ctx, child); err != nil {
		t.Fatalf("child task: %v (its loop deadlocked?)", err)
	}
}

// context.WithCancel on a task's context racing the task's cancellation:
// the context package registers with the task context while holding the
// new context's lock, so the callback must not run on that goroutine.
func TestWithCancelOfTaskContextRacingCancel(t *testing.T) {
	g := newGroup(t, 1)
	l := g.Loop(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3000 {
			got := make(chan context.Context, 1)
			release := make(chan struct{})
			f := l.Spawn(context.Background(), func(ctx context.Context) error {
				got <- ctx
				<-release
				return nil
			})
			tctx := <-got
			go CancelTask(tctx)
			c, cancel := context.WithCancel(tctx)
			<-c.Done()
			cancel()
			close(release)
			Await(context.Background(), f)
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("deadlock: context.WithCancel of a task context racing CancelTask")
	}
}
