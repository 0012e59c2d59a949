//go:build linux

package pgasync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// A deepPipeline is a one-loop pool with one shared TCP connection on
// which a task has sent, in one write: a query sleeping 0.05 s, one
// sleeping 0.02 s behind it, one sleeping 1 s, then 40 quick ones. When
// the first reply arrives, 42 requests are still in flight.
type deepPipeline struct {
	p             *pgasync.Pool
	start         time.Time
	first, second *fdpoll.Future[pgconn.CommandTag]
	long          *fdpoll.Future[pgconn.CommandTag]
	quick         []*fdpoll.Future[*pgasync.Row]
}

// runDeepPipeline sends a deepPipeline's queries from a task and runs
// check in the task, then waits for every query and checks the results.
// lowWaterDelay, if not 0, replaces the pool's low-water delay.
func runDeepPipeline(t *testing.T, lowWaterDelay time.Duration, check func(ctx context.Context, d *deepPipeline)) {
	leakCheck(t)
	p, _ := newPool(t, 1, "pgasync_conns_per_loop=1")
	if lowWaterDelay != 0 {
		pgasync.SetLowWaterDelay(p, lowWaterDelay)
	}
	inTask(t, p.Config().Group.Loop(0), func(ctx context.Context) error {
		// Prepare both statements first: a statement being described
		// holds back the requests behind it.
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT pg_sleep($1)", 0)); err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT $1::int", 0)); err != nil {
			return err
		}
		d := &deepPipeline{p: p, start: time.Now()}
		d.first = p.Exec(ctx, "SELECT pg_sleep($1)", 0.05)
		d.second = p.Exec(ctx, "SELECT pg_sleep($1)", 0.02)
		d.long = p.Exec(ctx, "SELECT pg_sleep($1)", 1)
		d.quick = make([]*fdpoll.Future[*pgasync.Row], 40)
		for i := range d.quick {
			d.quick[i] = p.QueryRow(ctx, "SELECT $1::int", i)
		}
		check(ctx, d)
		for _, f := range []*fdpoll.Future[pgconn.CommandTag]{d.first, d.second, d.long} {
			if _, err := fdpoll.Await(ctx, f); err != nil {
				return err
			}
		}
		for i, f := range d.quick {
			row, err := fdpoll.Await(ctx, f)
			if err != nil {
				return err
			}
			var v int
			if err := row.Scan(&v); err != nil || v != i {
				return fmt.Errorf("quick query %d: %d, %v", i, v, err)
			}
		}
		return nil
	})
}

// With many requests in flight on a shared TCP connection, the reader has
// the kernel hold replies back until a batch of them has arrived (so that
// neither it nor the server is woken for each reply): the socket's receive
// low-water mark is raised, but never above what the requests in flight
// are sure to send. The second reply waits under the mark. (The test keeps
// the mark up: normally a timer lowers it after a millisecond.)
func TestLowWaterMarkRaisedForDeepPipeline(t *testing.T) {
	runDeepPipeline(t, time.Hour, func(ctx context.Context, d *deepPipeline) {
		if _, err := fdpoll.Await(ctx, d.first); err != nil {
			t.Fatal(err)
		}
		fdpoll.Sleep(ctx, 100*time.Millisecond)
		marks, err := pgasync.LowWaterMarks(ctx, d.p, 0)
		if err != nil {
			t.Fatal(err)
		}
		// 42 requests in flight, each owing at least an 11-byte reply
		// (a BindComplete or ErrorResponse, then a ReadyForQuery).
		if len(marks) != 1 || marks[0] < 128 || marks[0] > 11*42 {
			t.Errorf("low-water marks %v, want one in [128, %d]", marks, 11*42)
		}
		if d.second.Done() {
			t.Errorf("second reply delivered under the low-water mark")
		}
	})
}

// A reply that arrived under the low-water mark is not held until the
// requests behind it (here a 1 s sleep) send theirs: a timer lowers the
// mark soon after.
func TestLowWaterMarkHoldsRepliesBriefly(t *testing.T) {
	runDeepPipeline(t, 0, func(ctx context.Context, d *deepPipeline) {
		if _, err := fdpoll.Await(ctx, d.second); err != nil {
			t.Fatal(err)
		}
		// 0.07 s of sleeping, then the low-water delay (1 ms) and
		// scheduling; far from the 1.07 s it would take to wait for the
		// long sleep.
		if took := time.Since(d.start); took > 500*time.Millisecond {
			t.Errorf("second query took %v", took)
		}
	})
}
