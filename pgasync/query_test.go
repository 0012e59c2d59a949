package pgasync_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

func TestQueryFromTaskAndGoroutine(t *testing.T) {
	leakCheck(t)
	p, _ := newPool(t, 2)
	g := p.Config().Group
	ctx := testCtx(t)

	// From a plain goroutine: Await blocks.
	row := await(t, ctx, p.QueryRow(ctx, "SELECT $1::int + 1, $2::text", 41, "hello"))
	var n int
	var s string
	if err := row.Scan(&n, &s); err != nil {
		t.Fatal(err)
	}
	if n != 42 || s != "hello" {
		t.Fatalf("got %d %q", n, s)
	}

	// From a task: Await suspends it.
	inTask(t, g.Loop(1), func(ctx context.Context) error {
		rows, err := fdpoll.Await(ctx, p.Query(ctx, "SELECT g, g*g FROM generate_series(1, $1::int) g", 5))
		if err != nil {
			return err
		}
		if rows.Len() != 5 || len(rows.FieldDescriptions()) != 2 {
			return fmt.Errorf("%d rows, %d fields", rows.Len(), len(rows.FieldDescriptions()))
		}
		sum := 0
		for rows.Next() {
			var a, b int
			if err := rows.Scan(&a, &b); err != nil {
				return err
			}
			if b != a*a {
				return fmt.Errorf("row %d %d", a, b)
			}
			sum += a
		}
		if sum != 15 || rows.Err() != nil {
			return fmt.Errorf("sum %d, err %v", sum, rows.Err())
		}
		if got := rows.CommandTag().String(); got != "SELECT 5" {
			return fmt.Errorf("command tag %q", got)
		}
		return nil
	})
}

func TestExec(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	// Without arguments: the simple protocol, several statements.
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS exec_t; CREATE TABLE exec_t (id int PRIMARY KEY, v text)"))
	tag := await(t, ctx, p.Exec(ctx, "INSERT INTO exec_t SELECT g, 'v' || g FROM generate_series(1, 10) g"))
	if tag.RowsAffected() != 10 || !tag.Insert() {
		t.Fatalf("tag %q", tag)
	}
	tag = await(t, ctx, p.Exec(ctx, "UPDATE exec_t SET v = $1 WHERE id <= $2", "x", 3))
	if tag.String() != "UPDATE 3" {
		t.Fatalf("tag %q", tag)
	}
	// Exec drops rows.
	tag = await(t, ctx, p.Exec(ctx, "SELECT * FROM exec_t WHERE id > $1", 0))
	if tag.String() != "SELECT 10" {
		t.Fatalf("tag %q", tag)
	}
	// An empty statement.
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "")); err != nil {
		t.Fatalf("empty statement: %v", err)
	}
}

func TestNoRows(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	row := await(t, ctx, p.QueryRow(ctx, "SELECT 1 WHERE false"))
	var n int
	err := row.Scan(&n)
	if !errors.Is(err, pgasync.ErrNoRows) || !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("got %v, want ErrNoRows", err)
	}
	rows := await(t, ctx, p.Query(ctx, "SELECT 1 WHERE $1::bool", false))
	if rows.Next() || rows.Len() != 0 {
		t.Fatal("rows from an empty result")
	}
	if err := rows.Scan(&n); err == nil {
		t.Fatal("Scan without Next succeeded")
	}
}

func TestServerErrors(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS err_t; CREATE TABLE err_t (id int CONSTRAINT err_t_pk PRIMARY KEY)"))
	await(t, ctx, p.Exec(ctx, "INSERT INTO err_t VALUES ($1)", 1))

	check := func(name string, err error, code string, more func(*pgconn.PgError) bool) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v (%T), want a *pgconn.PgError", name, err, err)
		}
		if pe.Code != code || (more != nil && !more(pe)) {
			t.Fatalf("%s: got %+v, want SQLSTATE %s", name, pe, code)
		}
	}
	_, err := fdpoll.Await(ctx, p.Query(ctx, "SELEC 1"))
	check("syntax", err, "42601", func(pe *pgconn.PgError) bool { return pe.Position == 1 })

	_, err = fdpoll.Await(ctx, p.Exec(ctx, "INSERT INTO err_t VALUES ($1)", 1))
	check("unique", err, "23505", func(pe *pgconn.PgError) bool {
		return pe.ConstraintName == "err_t_pk" && pe.TableName == "err_t" && pe.Detail != ""
	})

	row, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT 1 / $1::int", 0))
	check("division", err, "22012", nil)
	if row == nil || !errors.Is(row.Scan(new(int)), err) {
		t.Fatal("Row.Scan does not return the query's error")
	}

	_, err = fdpoll.Await(ctx, p.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = 'P0001', DETAIL = 'the detail', HINT = 'the hint'; END $$`))
	check("raise", err, "P0001", func(pe *pgconn.PgError) bool {
		return pe.Message == "boom" && pe.Detail == "the detail" && pe.Hint == "the hint"
	})

	_, err = fdpoll.Await(ctx, p.Query(ctx, "SELECT * FROM no_such_table"))
	check("undefined table", err, "42P01", nil)

	// The pool still works after all that.
	row = await(t, ctx, p.QueryRow(ctx, "SELECT count(*) FROM err_t"))
	var n int
	if err := row.Scan(&n); err != nil || n != 1 {
		t.Fatalf("after errors: %d, %v", n, err)
	}
}

func TestArgumentErrors(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	_, err := fdpoll.Await(ctx, p.Query(ctx, "SELECT $1::int, $2::int", 1))
	var ae *pgasync.ArgError
	if !errors.As(err, &ae) {
		t.Fatalf("wrong arg count: got %v, want *ArgError", err)
	}
	_, err = fdpoll.Await(ctx, p.Query(ctx, "SELECT $1::int", make(chan int)))
	if !errors.As(err, &ae) || ae.Index != 0 {
		t.Fatalf("unencodable arg: got %v, want *ArgError for $1", err)
	}
	_, err = fdpoll.Await(ctx, p.Query(ctx, "SELECT $1::int", "not a number"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22P02" {
		t.Fatalf("bad text for int: got %v, want SQLSTATE 22P02", err)
	}
	row := await(t, ctx, p.QueryRow(ctx, "SELECT $1::int", 7))
	var n int
	if err := row.Scan(&n); err != nil || n != 7 {
		t.Fatalf("after argument errors: %d %v", n, err)
	}
	// Scan errors.
	row = await(t, ctx, p.QueryRow(ctx, "SELECT 'text'::text"))
	var se *pgasync.ScanError
	if err := row.Scan(&n); !errors.As(err, &se) || se.Column != 0 {
		t.Fatalf("scanning text into int: got %v, want *ScanError", err)
	}
	if err := row.Scan(&n, &n); err == nil {
		t.Fatal("Scan with too many destinations succeeded")
	}
}

func TestTransactionStatementOnSharedConnection(t *testing.T) {
	p, app := newPool(t, 1, "pgasync_conns_per_loop=1")
	ctx := testCtx(t)
	for _, q := range []string{"BEGIN", "  /* c */ -- c\n start transaction", "begin isolation level serializable"} {
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, q)); !errors.Is(err, pgasync.ErrTxStatement) {
			t.Fatalf("%q: got %v, want ErrTxStatement", q, err)
		}
	}
	// Hidden in a multi-statement string: caught by the transaction
	// status; the connection is dropped (rolling back), the pool goes on.
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1; BEGIN")); !errors.Is(err, pgasync.ErrTxStatement) {
		t.Fatalf("SELECT 1; BEGIN: got %v, want ErrTxStatement", err)
	}
	await(t, ctx, p.Exec(ctx, "SELECT $1::int", 1))
	if n := backends(t, app); n != 1 {
		t.Fatalf("%d backends, want 1", n)
	}
	if n := inTransaction(t, app); n != 0 {
		t.Fatalf("%d backends left in a transaction", n)
	}
}

// A failing query in the middle of a pipeline fails alone: each query has
// its own Sync.
func TestFailingQueryMidPipeline(t *testing.T) {
	p, app := newPool(t, 1, "pgasync_conns_per_loop=1")
	g := p.Config().Group
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		// Warm the statement cache so that the burst below is one pipeline.
		if _, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT 10 / $1::int", 1)); err != nil {
			return err
		}
		const n = 200
		fs := make([]*fdpoll.Future[*pgasync.Row], n)
		for i := range fs {
			d := 1
			if i == n/2 {
				d = 0
			}
			fs[i] = p.QueryRow(ctx, "SELECT 10 / $1::int", d)
		}
		for i, f := range fs {
			row, err := fdpoll.Await(ctx, f)
			if i == n/2 {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "22012" {
					return fmt.Errorf("query %d: got %v, want division by zero", i, err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("query %d: %w", i, err)
			}
			var v int
			if err := row.Scan(&v); err != nil || v != 10 {
				return fmt.Errorf("query %d: %d %v", i, v, err)
			}
		}
		return nil
	})
	if n := backends(t, app); n != 1 {
		t.Fatalf("%d backends for one pipelined connection", n)
	}
}

func TestThousandConcurrentQueriesFromTasks(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 2)
	g := p.Config().Group
	ctx := testCtx(t)
	const n = 1000
	fs := make([]*fdpoll.Future[struct{}], n)
	for i := range fs {
		fs[i] = g.Spawn(ctx, func(ctx context.Context) error {
			row, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT $1::int * 2, pg_backend_pid()", i))
			if err != nil {
				return err
			}
			var v, pid int
			if err := row.Scan(&v, &pid); err != nil {
				return err
			}
			if v != 2*i {
				return fmt.Errorf("task %d got %d", i, v)
			}
			return nil
		})
	}
	for i, f := range fs {
		if _, err := fdpoll.Await(ctx, f); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	// Two loops, two pipelined connections each at most.
	if b := backends(t, app); b < 1 || b > 4 {
		t.Fatalf("%d backends, want 1..4", b)
	}
}

func TestThousandConcurrentQueriesFromGoroutines(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 2)
	ctx := testCtx(t)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row, err := fdpoll.Await(ctx, p.QueryRow(ctx, "SELECT $1::int + 1", i))
			if err != nil {
				errs <- err
				return
			}
			var v int
			if err := row.Scan(&v); err != nil {
				errs <- err
			} else if v != i+1 {
				errs <- fmt.Errorf("goroutine %d got %d", i, v)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b := backends(t, app); b < 1 || b > 4 {
		t.Fatalf("%d backends, want 1..4", b)
	}
}

func TestClosedPool(t *testing.T) {
	leakCheck(t)
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "SELECT 1"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fdpoll.Await(ctx, p.Query(ctx, "SELECT 1")); !errors.Is(err, pgasync.ErrPoolClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, err := fdpoll.Await(ctx, p.Begin(ctx)); !errors.Is(err, pgasync.ErrPoolClosed) {
		t.Fatalf("Begin after Close: %v", err)
	}
}
