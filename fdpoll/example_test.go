package fdpoll_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// A task waits for a pipe to become readable, with a timeout. While it
// waits, its loop is free to run other tasks.
func ExampleWaitFD() {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		panic(err)
	}
	defer g.Close()

	r, w, err := os.Pipe()
	if err != nil {
		panic(err)
	}
	defer r.Close()
	defer w.Close()
	fd := int(r.Fd())

	done := g.Spawn(context.Background(), func(ctx context.Context) error {
		// Nothing written yet: the wait times out.
		err := fdpoll.WaitFD(ctx, fd, fdpoll.Readable, 10*time.Millisecond)
		fmt.Println("before the write:", err)

		go func() {
			time.Sleep(10 * time.Millisecond)
			w.Write([]byte("ping"))
		}()
		err = fdpoll.WaitFD(ctx, fd, fdpoll.Readable, time.Second)
		fmt.Println("after the write:", err)
		buf := make([]byte, 4)
		n, _ := r.Read(buf)
		fmt.Printf("read %q\n", buf[:n])
		return nil
	})
	if _, err := fdpoll.Await(context.Background(), done); err != nil {
		panic(err)
	}
	// Output:
	// before the write: fdpoll: timeout
	// after the write: <nil>
	// read "ping"
}

// The same function awaits a future inside a task, where it suspends the
// task, and in a plain goroutine, where it blocks.
func ExampleAwait() {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		panic(err)
	}
	defer g.Close()

	answer := func(ctx context.Context) (int, error) {
		f := fdpoll.NewFuture[int]()
		go func() {
			time.Sleep(time.Millisecond)
			f.Complete(42, nil)
		}()
		return fdpoll.Await(ctx, f)
	}

	var inTask int
	task := g.Spawn(context.Background(), func(ctx context.Context) error {
		var err error
		inTask, err = answer(ctx)
		return err
	})
	fdpoll.Await(context.Background(), task)
	inGoroutine, _ := answer(context.Background())
	fmt.Println(inTask, inGoroutine)
	// Output: 42 42
}

// Go runs blocking code off the loop; the task awaits its result.
func ExampleGo() {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		panic(err)
	}
	defer g.Close()

	task := g.Spawn(context.Background(), func(ctx context.Context) error {
		size, err := fdpoll.Await(ctx, fdpoll.Go(ctx, func(context.Context) (int64, error) {
			fi, err := os.Stat("example_test.go") // a blocking syscall
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		}))
		fmt.Println(size > 0, err)
		return nil
	})
	fdpoll.Await(context.Background(), task)
	// Output: true <nil>
}
