package dnsasync

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// testTimeout bounds every wait of a test.
const testTimeout = 20 * time.Second

// newGroup returns a private group of n loops, closed when t ends, after
// which no fd or goroutine of it may be left (checked).
func newGroup(t *testing.T, n int) *fdpoll.Group {
	t.Helper()
	fds := openFDs(t)
	g, err := fdpoll.NewGroup(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		// Sockets closed by the resolver are released by their loop; the
		// group's Close has waited for that.
		// A socket closed by net (the fault server's) is released once its
		// last reader has woken: give that a moment.
		deadline := time.Now().Add(5 * time.Second)
		for openFDs(t) > fds && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if after := openFDs(t); after > fds {
			t.Errorf("fd leak: %d open before the test, %d after:\n%s", fds, after, listFDs())
		}
	})
	return g
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting fds: %v", err)
	}
	return len(ents)
}

// listFDs describes the open fds.
func listFDs() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), target)
	}
	return b.String()
}

// newResolver returns a resolver for servers whose lookups outside tasks
// run on g, with the given changes to its configuration.
func newResolver(t *testing.T, g *fdpoll.Group, servers []string, edit func(*Config)) *Resolver {
	t.Helper()
	cfg := &Config{Servers: servers, Timeout: 2 * time.Second, Attempts: 1, Group: g}
	if edit != nil {
		edit(cfg)
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testCtx returns a context that ends after testTimeout or with t.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// inTask runs fn as a task on l and waits for it.
func inTask(t *testing.T, l *fdpoll.Loop, fn func(ctx context.Context)) {
	t.Helper()
	ctx := testCtx(t)
	done := l.Spawn(ctx, func(ctx context.Context) error { fn(ctx); return nil })
	if _, err := fdpoll.Await(ctx, done); err != nil {
		t.Fatalf("task: %v", err)
	}
	if err := done.Err(); err != nil {
		t.Fatalf("task: %v", err)
	}
}

// await waits for f from a plain goroutine, failing the test if it takes
// longer than testTimeout.
func await[T any](t *testing.T, f *fdpoll.Future[T]) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	v, err := fdpoll.Await(ctx, f)
	if ctx.Err() != nil {
		t.Fatalf("no result within %v", testTimeout)
	}
	return v, err
}

// goroutinesSettle waits until the number of goroutines is at most n, to
// check that nothing was left running.
func goroutinesSettle(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
