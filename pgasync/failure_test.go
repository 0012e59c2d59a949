package pgasync_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/pgcluster"
	"github.com/yieldio/yieldio/pgasync"
)

// The backend is killed in the middle of a query: the pending requests fail
// with ErrConnLost (carrying the server's FATAL error) and the next query
// gets a new connection.
func TestBackendKilledMidQuery(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 1, "pgasync_conns_per_loop=1")
	g := p.Config().Group
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT $1::int", 1)); err != nil {
			return err
		}
		sleeping := p.QueryRow(ctx, "SELECT pg_sleep($1)", 30)
		behind := p.QueryRow(ctx, "SELECT $1::int", 2) // pipelined behind it
		deadline := time.Now().Add(testTimeout)
		// Executing, not still being prepared: a request still waiting
		// for its statement's description when the connection breaks has
		// not been sent, and is rightly sent again on a new connection.
		for inPgSleep(t, app) == 0 {
			if time.Now().After(deadline) {
				return errors.New("pg_sleep never started")
			}
			if err := fdpoll.Sleep(ctx, 5*time.Millisecond); err != nil {
				return err
			}
		}
		admin(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+app+"'")
		for _, f := range []*fdpoll.Future[*pgasync.Row]{sleeping, behind} {
			_, err := fdpoll.Await(ctx, f)
			var pe *pgconn.PgError
			if !errors.Is(err, pgasync.ErrConnLost) {
				return fmt.Errorf("got %v, want ErrConnLost", err)
			}
			if f == sleeping && (!errors.As(err, &pe) || pe.Code != "57P01") {
				return fmt.Errorf("got %v, want the server's 57P01", err)
			}
		}
		row, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT $1::int", 3))
		if err != nil {
			return fmt.Errorf("after the kill: %w", err)
		}
		var n int
		return row.Scan(&n)
	})
	if n := backends(t, app); n != 1 {
		t.Fatalf("%d backends after reconnecting", n)
	}
}

// An idle connection killed between queries is noticed and replaced.
func TestIdleConnectionKilled(t *testing.T) {
	p, app := newPool(t, 2)
	ctx := testCtx(t)
	for i := range 10 {
		await(t, ctx, p.Exec(ctx, "SELECT $1::int", i))
	}
	admin(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+app+"'")
	time.Sleep(100 * time.Millisecond) // let the loops see the FATAL error and EOF
	for i := range 10 {
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT $1::int", i)); err != nil {
			t.Fatalf("query %d after the kill: %v", i, err)
		}
	}
}

// The server restarts: pending requests fail, requests while it is down
// fail fast (no hang), and the pool reconnects once it is back.
func TestServerRestart(t *testing.T) {
	needCluster(t)
	leakCheck(t)
	ctx := testCtx(t)
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	p := newPoolDSN(t, 2, c.DSN(""), func(cfg *pgasync.Config) {
		cfg.MinReconnectDelay, cfg.MaxReconnectDelay = 20*time.Millisecond, 200*time.Millisecond
	})
	for i := range 20 {
		await(t, ctx, p.Exec(ctx, "SELECT $1::int", i))
	}
	listener := await(t, ctx, p.Listen(ctx, "restart"))
	tx := await(t, ctx, p.Begin(ctx))
	pending := p.QueryRow(ctx, "SELECT pg_sleep(30)")
	// Watched from a pool of its own: a query of p may be pipelined behind
	// the sleep on the same connection.
	watch := newPoolDSN(t, 1, c.DSN(""))
	for {
		row := await(t, ctx, watch.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query = 'SELECT pg_sleep(30)'"))
		var n int
		if err := row.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := c.StopServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := fdpoll.Await(ctx, pending); !errors.Is(err, pgasync.ErrConnLost) {
		t.Fatalf("pending query: %v", err)
	}
	if _, err := fdpoll.Await(ctx, listener.Next(ctx)); !errors.Is(err, pgasync.ErrConnLost) {
		t.Fatalf("listener: %v", err)
	}
	if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "SELECT 1")); !errors.Is(err, pgasync.ErrConnLost) {
		t.Fatalf("transaction: %v", err)
	}
	for i := range 5 {
		start := time.Now()
		_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
		var ce *pgasync.ConnError
		if !errors.As(err, &ce) || ce.Op != "connect" {
			t.Fatalf("query %d while down: %v", i, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("query %d while down took %v", i, d)
		}
	}
	if err := c.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect after the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Every loop, and the pinned connections, work again.
	for i := range 20 {
		await(t, ctx, p.Exec(ctx, "SELECT $1::int", i))
	}
	tx = await(t, ctx, p.Begin(ctx))
	await(t, ctx, tx.Commit(ctx))
	listener = await(t, ctx, p.Listen(ctx, "restart"))
	listener.Close()
}

func TestStatementCache(t *testing.T) {
	p, _ := newPool(t, 1, "pgasync_conns_per_loop=1", "statement_cache_capacity=3")
	ctx := testCtx(t)
	prepared := func() int {
		row := await(t, ctx, p.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE $1::bool", true))
		var n int
		if err := row.Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for round := range 3 {
		for i := range 8 {
			row := await(t, ctx, p.QueryRow(ctx, fmt.Sprintf("SELECT $1::int + %d", i), round))
			var n int
			if err := row.Scan(&n); err != nil || n != round+i {
				t.Fatalf("round %d statement %d: %d %v", round, i, n, err)
			}
		}
	}
	if n := prepared(); n > 3 {
		t.Fatalf("%d prepared statements, cache capacity 3", n)
	}

	// A table change invalidates a cached plan; the query is retried.
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS stmt_t; CREATE TABLE stmt_t (a int); INSERT INTO stmt_t VALUES (1)"))
	q := "SELECT * FROM stmt_t WHERE a = $1"
	rows := await(t, ctx, p.Query(ctx, q, 1))
	if len(rows.FieldDescriptions()) != 1 {
		t.Fatal("fields")
	}
	await(t, ctx, p.Exec(ctx, "ALTER TABLE stmt_t ADD COLUMN b text DEFAULT 'x'"))
	rows = await(t, ctx, p.Query(ctx, q, 1))
	if len(rows.FieldDescriptions()) != 2 {
		t.Fatalf("%d fields after ALTER TABLE", len(rows.FieldDescriptions()))
	}
	// DISCARD ALL drops the server's statements; the cache recovers.
	await(t, ctx, p.Exec(ctx, "DISCARD ALL"))
	await(t, ctx, p.Query(ctx, q, 1))

	// Unnamed statements leave nothing prepared on the server.
	u, _ := newPool(t, 1, "default_query_exec_mode=exec")
	for i := range 5 {
		await(t, ctx, u.Exec(ctx, fmt.Sprintf("SELECT $1::int + %d", i), i))
	}
	row := await(t, ctx, u.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE $1::bool", true))
	var n int
	if err := row.Scan(&n); err != nil || n != 0 {
		t.Fatalf("unnamed mode: %d prepared statements, %v", n, err)
	}
}
