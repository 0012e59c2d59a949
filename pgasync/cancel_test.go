package pgasync_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// running returns how many backends of app run a statement containing
// pattern (or parse or describe it: the query text shows from Parse on).
func running(t testing.TB, app, pattern string) int {
	t.Helper()
	return queryInt(t, adminPool,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE $2", app, pattern)
}

// inPgSleep returns how many backends of app are inside pg_sleep: executing
// it, not merely parsing the statement that calls it.
func inPgSleep(t testing.TB, app string) int {
	t.Helper()
	return queryInt(t, adminPool,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep'", app)
}

// A cancelled context fails the future at once with the context's error,
// cancels the statement on the server, and leaves the connection usable.
func TestCancelPgSleep(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 1, "pgasync_conns_per_loop=1")
	g := p.Config().Group
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := fdpoll.Await(qctx, p.QueryRow(qctx, "SELECT pg_sleep($1)", 30))
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("got %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			return fmt.Errorf("cancellation took %v", d)
		}
		// The same (only) connection answers at once: pg_sleep was
		// cancelled, not left running for 30 s.
		start = time.Now()
		row, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT 1"))
		if err != nil {
			return err
		}
		var n int
		if err := row.Scan(&n); err != nil || n != 1 {
			return fmt.Errorf("after cancel: %d %v", n, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			return fmt.Errorf("next query took %v: the sleep was not cancelled", d)
		}
		return nil
	})
	if n := running(t, app, "%pg_sleep%"); n != 0 {
		t.Fatalf("pg_sleep still running on %d backends", n)
	}
	if n := backends(t, app); n != 1 {
		t.Fatalf("%d backends, want the one connection kept", n)
	}
}

// Cancelling a request queued behind another caller's in the pipeline must
// not cancel that other request: the CancelRequest goes out only when the
// cancelled one is executing.
func TestCancelQueuedBehindAnotherQuery(t *testing.T) {
	p, _ := newPool(t, 1, "pgasync_conns_per_loop=1")
	g := p.Config().Group
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		// Prepare both statements, so the two below are one pipeline.
		for _, q := range []string{"SELECT pg_sleep($1), 'first'", "SELECT pg_sleep($1), 'second'"} {
			if _, err := fdpoll.Await(ctx, p.Exec(ctx, q, 0)); err != nil {
				return err
			}
		}
		first := p.QueryRow(ctx, "SELECT pg_sleep($1), 'first'", 0.5)
		qctx, cancel := context.WithCancel(ctx)
		defer cancel()
		second := p.QueryRow(qctx, "SELECT pg_sleep($1), 'second'", 30)
		if err := fdpoll.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		cancel() // the first is still running
		if _, err := fdpoll.Await(ctx, second); !errors.Is(err, context.Canceled) {
			return fmt.Errorf("second: got %v, want Canceled", err)
		}
		row, err := fdpoll.Await(ctx, first)
		if err != nil {
			return fmt.Errorf("first query was hit by the second's cancel: %w", err)
		}
		var s string
		if err := row.Scan(nil, &s); err != nil || s != "first" {
			return fmt.Errorf("first: %q %v", s, err)
		}
		start := time.Now()
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1")); err != nil {
			return err
		}
		if d := time.Since(start); d > 5*time.Second {
			return fmt.Errorf("the second sleep was not cancelled (next query took %v)", d)
		}
		return nil
	})
}

// A request whose context is already done never reaches the server.
func TestCancelledBeforeSending(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fdpoll.Await(testCtx(t), p.Exec(ctx, "SELECT 1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	// From a plain goroutine, cancelled while waiting.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := fdpoll.Await(ctx2, p.Query(ctx2, "SELECT pg_sleep(10)")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	ctx3 := testCtx(t)
	await(t, ctx3, p.Exec(ctx3, "SELECT 1"))
}
