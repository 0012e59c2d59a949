package fdpoll

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

// newGroup starts a group of n loops, closed when the test ends.
func newGroup(t testing.TB, n int) *Group {
	t.Helper()
	g, err := NewGroup(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// inTask runs fn as a task on l and waits for it, failing the test on error
// or when it takes longer than testTimeout.
func inTask(t testing.TB, l *Loop, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := Await(ctx, l.Spawn(ctx, fn)); err != nil {
		t.Fatal(err)
	}
}

// countFDs returns how many fds the process has open.
func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// goroutines returns the stacks of all goroutines. Leak checks compare
// counts against a baseline taken after the default group has started.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Split(string(buf), "\n\n")
}

// baseline starts the default group (which lives for the whole process)
// and returns the goroutines and fds before a leak-checked test.
func baseline(t *testing.T) (int, []string) {
	t.Helper()
	Default()
	return countFDs(t), goroutines()
}

// checkNoLeaks fails t if goroutines or fds started after the baseline are
// still around once things settle.
func checkNoLeaks(t *testing.T, fds int, before []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := goroutines()
		nfds := countFDs(t)
		if len(now) <= len(before) && nfds <= fds {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leak: %d goroutines (was %d), %d fds (was %d):\n%s",
				len(now), len(before), nfds, fds, strings.Join(now, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
