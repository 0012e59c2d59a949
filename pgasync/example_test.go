package pgasync_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// Queries from tasks: each task suspends on its query while the loop runs
// the others, and the queries of all the tasks of a loop share a pipeline.
func ExamplePool_QueryRow() {
	pool, err := pgasync.Open(os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	ctx := context.Background()
	names := make([]string, 3)
	tasks := make([]fdpoll.Waitable, len(names))
	for i := range names {
		tasks[i] = fdpoll.Default().Spawn(ctx, func(ctx context.Context) error {
			row, err := fdpoll.Await(ctx, pool.QueryRow(ctx, "SELECT 'task ' || $1::int", i))
			if err != nil {
				return err
			}
			return row.Scan(&names[i])
		})
	}
	if err := fdpoll.WaitAll(ctx, tasks...); err != nil {
		panic(err)
	}
	fmt.Println(strings.Join(names, ", "))
	// Output: task 0, task 1, task 2
}

// The same calls work from a plain goroutine, such as a net/http handler:
// Await blocks it.
func ExamplePool_Query() {
	pool, err := pgasync.Open(os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()

	ctx := context.Background()
	rows, err := fdpoll.Await(ctx, pool.Query(ctx, "SELECT g, g * g FROM generate_series(1, $1::int) g", 3))
	if err != nil {
		panic(err)
	}
	for rows.Next() {
		var n, square int
		if err := rows.Scan(&n, &square); err != nil {
			panic(err)
		}
		fmt.Println(n, square)
	}
	fmt.Println(rows.CommandTag())
	// Output:
	// 1 1
	// 2 4
	// 3 9
	// SELECT 3
}

func ExamplePool_Begin() {
	pool, err := pgasync.Open(os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	ctx := context.Background()

	tx, err := fdpoll.Await(ctx, pool.Begin(ctx))
	if err != nil {
		panic(err)
	}
	// Statements of a transaction may be sent without waiting: they run
	// in order on its connection.
	f1 := tx.Exec(ctx, "CREATE TEMP TABLE t (id int, balance int)")
	f2 := tx.Exec(ctx, "INSERT INTO t VALUES (1, 100), (2, 50)")
	f3 := tx.QueryRow(ctx, "SELECT sum(balance) FROM t")
	if err := fdpoll.WaitAll(ctx, f1, f2, f3); err != nil {
		panic(err)
	}
	row, err := f3.Result()
	if err != nil {
		panic(err)
	}
	var sum int
	if err := row.Scan(&sum); err != nil {
		panic(err)
	}
	if _, err := fdpoll.Await(ctx, tx.Rollback(ctx)); err != nil {
		panic(err)
	}
	fmt.Println("sum inside the transaction:", sum)
	// Output: sum inside the transaction: 150
}

func ExamplePool_CopyFrom() {
	pool, err := pgasync.Open(os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	ctx := context.Background()
	if _, err := fdpoll.Await(ctx, pool.Exec(ctx, "DROP TABLE IF EXISTS example_copy; CREATE TABLE example_copy (id int, name text)")); err != nil {
		panic(err)
	}

	// Any io.Reader; a request body streams straight into the table.
	data := strings.NewReader("1\tada\n2\tgrace\n3\tbarbara\n")
	n, err := fdpoll.Await(ctx, pool.CopyFrom(ctx, "COPY example_copy (id, name) FROM STDIN", data))
	if err != nil {
		panic(err)
	}
	fmt.Println("copied", n, "rows")

	var out strings.Builder
	if _, err := fdpoll.Await(ctx, pool.CopyTo(ctx, "COPY (SELECT name FROM example_copy ORDER BY id) TO STDOUT", &out)); err != nil {
		panic(err)
	}
	fmt.Print(out.String())
	// Output:
	// copied 3 rows
	// ada
	// grace
	// barbara
}

func ExamplePool_Listen() {
	pool, err := pgasync.Open(os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	ctx := context.Background()

	l, err := fdpoll.Await(ctx, pool.Listen(ctx, "jobs"))
	if err != nil {
		panic(err)
	}
	defer l.Close()
	next := l.Next(ctx)
	if _, err := fdpoll.Await(ctx, pool.Exec(ctx, "SELECT pg_notify('jobs', $1)", "job 42")); err != nil {
		panic(err)
	}
	n, err := fdpoll.Await(ctx, next)
	if err != nil {
		panic(err)
	}
	fmt.Println(n.Channel, n.Payload)
	// Output: jobs job 42
}
