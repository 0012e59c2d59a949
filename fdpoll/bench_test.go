package fdpoll

import (
	"context"
	"iter"
	"testing"
	"time"
)

func benchGroup(b *testing.B, n int) *Group {
	b.Helper()
	g, err := NewGroup(n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

// BenchmarkAwaitDone measures Await of an already completed future inside a
// task: the zero-allocation fast path.
func BenchmarkAwaitDone(b *testing.B) {
	g := benchGroup(b, 1)
	f := Completed(1, nil)
	done := g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := Await(ctx, f); err != nil {
				return err
			}
		}
		b.StopTimer()
		return nil
	})
	if _, err := Await(context.Background(), done); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSpawnAwait measures spawning a task that awaits a completed
// future, and awaiting the task from another task of the same loop.
func BenchmarkSpawnAwait(b *testing.B) {
	g := benchGroup(b, 1)
	l := g.Loop(0)
	f := Completed(1, nil)
	fn := func(ctx context.Context) error { _, err := Await(ctx, f); return err }
	done := l.Spawn(context.Background(), func(ctx context.Context) error {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := Await(ctx, l.Spawn(ctx, fn)); err != nil {
				return err
			}
		}
		b.StopTimer()
		return nil
	})
	if _, err := Await(context.Background(), done); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPingPong measures two tasks on one loop handing a value back and
// forth through futures: each exchange is one suspend and one resume of
// each task through the trampoline.
func BenchmarkPingPong(b *testing.B) {
	g := benchGroup(b, 1)
	l := g.Loop(0)
	ping, pong := NewFuture[int](), NewFuture[int]()
	n := b.N
	b.ReportAllocs()
	b.ResetTimer()
	l.Spawn(context.Background(), func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			if _, err := Await(ctx, ping); err != nil {
				return err
			}
			ping = NewFuture[int]()
			pong.Complete(i, nil)
		}
		return nil
	})
	done := l.Spawn(context.Background(), func(ctx context.Context) error {
		for i := 0; i < n; i++ {
			ping.Complete(i, nil)
			if _, err := Await(ctx, pong); err != nil {
				return err
			}
			pong = NewFuture[int]()
		}
		return nil
	})
	if _, err := Await(context.Background(), done); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCrossGoroutineWake measures a task woken by a future completed
// on another goroutine: a post to the loop and, when it sleeps, an eventfd
// write.
func BenchmarkCrossGoroutineWake(b *testing.B) {
	g := benchGroup(b, 1)
	req := make(chan *Future[int])
	go func() {
		for f := range req {
			f.Complete(1, nil)
		}
	}()
	defer close(req)
	done := g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f := NewFuture[int]()
			req <- f
			if _, err := Await(ctx, f); err != nil {
				return err
			}
		}
		b.StopTimer()
		return nil
	})
	if _, err := Await(context.Background(), done); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSleep measures a loop timer: a task sleeps 1µs (timer added to
// the heap, a poll with a nanosecond timeout, the timer fires and the task
// resumes). The kernel's timer slack dominates; compare with
// BenchmarkPeerTimeSleep.
func BenchmarkSleep(b *testing.B) {
	g := benchGroup(b, 1)
	done := g.Loop(0).Spawn(context.Background(), func(ctx context.Context) error {
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := Sleep(ctx, time.Microsecond); err != nil {
				return err
			}
		}
		b.StopTimer()
		return nil
	})
	if _, err := Await(context.Background(), done); err != nil {
		b.Fatal(err)
	}
}

// Peers: the same shapes with plain goroutines and channels, and the floor
// of iter.Pull itself, measured in the same run for ratios.

// BenchmarkPeerChanPingPong: two goroutines handing a value back and forth
// over unbuffered channels.
func BenchmarkPeerChanPingPong(b *testing.B) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ping <- i
		<-pong
	}
	b.StopTimer()
	close(ping)
}

// BenchmarkPeerPullPingPong: two iter.Pull coroutines resumed in turn by a
// trivial scheduler; the floor under BenchmarkPingPong (four coroutine
// switches per exchange, nothing else).
func BenchmarkPeerPullPingPong(b *testing.B) {
	var ready []int
	var next [2]func() (int, bool)
	var stop [2]func()
	for k := range 2 {
		next[k], stop[k] = iter.Pull(func(yield func(int) bool) {
			for {
				ready = append(ready, 1-k)
				if !yield(0) {
					return
				}
			}
		})
	}
	ready = append(ready, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range 2 {
			k := ready[0]
			ready = ready[1:]
			next[k]()
		}
		if cap(ready) > 1024 {
			ready = append([]int(nil), ready...)
		}
	}
	b.StopTimer()
	stop[0]()
	stop[1]()
}

// BenchmarkPeerGoSpawnWait: start a goroutine and wait for it to finish.
func BenchmarkPeerGoSpawnWait(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		done := make(chan struct{})
		go func() { close(done) }()
		<-done
	}
}

// BenchmarkPeerGoroutineWake: a goroutine blocked on a channel, woken by
// another goroutine.
func BenchmarkPeerGoroutineWake(b *testing.B) {
	req := make(chan chan int)
	go func() {
		for c := range req {
			c <- 1
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := make(chan int, 1)
		req <- c
		<-c
	}
	b.StopTimer()
	close(req)
}

// BenchmarkPeerTimeSleep: the runtime's timer, time.Sleep(1µs).
func BenchmarkPeerTimeSleep(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		time.Sleep(time.Microsecond)
	}
}
