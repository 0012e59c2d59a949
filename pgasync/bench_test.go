package pgasync_test

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// The benchmark query of the issue, on a 10,000-row table.
const (
	worldQuery = "SELECT randomnumber FROM world WHERE id = $1"
	worldRows  = 10000
	callers    = 256
)

var worldOnce sync.Once

func setupWorld(b *testing.B) {
	worldOnce.Do(func() {
		ctx := context.Background()
		if _, err := fdpoll.Await(ctx, adminPool.Exec(ctx, `
			DROP TABLE IF EXISTS world;
			CREATE TABLE world (id int PRIMARY KEY, randomnumber int NOT NULL);
			INSERT INTO world SELECT g, (random() * 10000)::int FROM generate_series(1, 10000) g;
			ANALYZE world`)); err != nil {
			b.Fatal(err)
		}
	})
}

// runCallers runs b.N queries split among callers concurrent workers
// started by spawn.
func runCallers(b *testing.B, spawn func(n int, done func(error))) {
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	b.ResetTimer()
	for i := range callers {
		n := b.N / callers
		if i < b.N%callers {
			n++
		}
		wg.Add(1)
		spawn(n, func(err error) {
			if err != nil {
				errs <- err
			}
			wg.Done()
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func queryWorld(ctx context.Context, p *pgasync.Pool, n int) error {
	var v int32
	for range n {
		row, err := fdpoll.Await(ctx, p.QueryRow(ctx, worldQuery, rand.IntN(worldRows)+1))
		if err != nil {
			return err
		}
		if err := row.Scan(&v); err != nil {
			return err
		}
	}
	return nil
}

// 256 tasks on the pool's loops, each running queries one after another:
// the queries of all the tasks of a loop are pipelined.
func BenchmarkPoolQueryRowTasks(b *testing.B) {
	setupWorld(b)
	p := newPoolDSN(b, 0, withParams(baseDSN, os.Getenv("BENCH_PARAMS")))
	g := p.Config().Group
	ctx := context.Background()
	if err := queryWorld(ctx, p, 100); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	runCallers(b, func(n int, done func(error)) {
		f := g.Spawn(ctx, func(ctx context.Context) error { return queryWorld(ctx, p, n) })
		go func() {
			_, err := fdpoll.Await(ctx, f)
			done(err)
		}()
	})
}

// 256 plain goroutines (as net/http handlers would be) sharing the pool.
func BenchmarkPoolQueryRowGoroutines(b *testing.B) {
	setupWorld(b)
	p := newPoolDSN(b, 0, withParams(baseDSN, os.Getenv("BENCH_PARAMS")))
	ctx := context.Background()
	if err := queryWorld(ctx, p, 100); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	runCallers(b, func(n int, done func(error)) {
		go func() { done(queryWorld(ctx, p, n)) }()
	})
}

// The peer: one pgx connection, queries one after another (pgx has no
// pipelining across callers). bench/pg compares with pgxpool.
func BenchmarkPgxConnQueryRow(b *testing.B) {
	setupWorld(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseDSN)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	var v int32
	for range b.N {
		if err := conn.QueryRow(ctx, worldQuery, rand.IntN(worldRows)+1).Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// The same serial round trip through pgasync, from a task.
func BenchmarkPoolQueryRowSerial(b *testing.B) {
	setupWorld(b)
	p := newPoolDSN(b, 1, baseDSN)
	g := p.Config().Group
	ctx := context.Background()
	if err := queryWorld(ctx, p, 100); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := fdpoll.Await(ctx, g.Loop(0).Spawn(ctx, func(ctx context.Context) error { return queryWorld(ctx, p, b.N) })); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
