package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/pgcluster"
	"github.com/yieldio/yieldio/pgasync"
)

// worldRows is the size of the demo's table.
const worldRows = 10000

const createWorld = `
	CREATE TABLE IF NOT EXISTS world (id int PRIMARY KEY, randomnumber int NOT NULL);
	INSERT INTO world SELECT g, (random() * 10000)::int FROM generate_series(1, 10000) g
		ON CONFLICT (id) DO NOTHING`

// A worldRow is one row of the world table, as the endpoint returns it.
type worldRow struct {
	ID           int32 `json:"id"`
	RandomNumber int32 `json:"randomNumber"`
}

// dbHandler answers GET /db?id=N with row N of the world table as JSON,
// and GET /db?queries=N with N random rows, all N queries sent at once
// (pipelined on the loop's connections) and awaited together. The table is
// created, and filled with 10,000 rows, by the first request that finds it
// missing.
//
//	{"id":42,"randomNumber":7310}
//
// On yieldio's server the handler's task suspends while Postgres works; on
// net/http its goroutine blocks. Errors are JSON too: 400 for a bad
// parameter, 404 for a missing row, 503 when the database is unreachable,
// 500 otherwise.
func dbHandler(pool *pgasync.Pool) http.Handler {
	var table worldTable
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeDBJSON(w, http.StatusMethodNotAllowed, dbError{Error: "method not allowed"})
			return
		}
		ctx := r.Context()
		q := r.URL.Query()
		var ids []int
		switch {
		case q.Has("queries"):
			n, err := strconv.Atoi(q.Get("queries"))
			if err != nil || n < 1 || n > 500 {
				writeDBJSON(w, http.StatusBadRequest, dbError{Error: "queries must be an integer from 1 to 500"})
				return
			}
			for range n {
				ids = append(ids, rand.IntN(worldRows)+1)
			}
		default:
			id, err := strconv.Atoi(q.Get("id"))
			if err != nil || id < 1 || id > 1<<31-1 {
				writeDBJSON(w, http.StatusBadRequest, dbError{Error: "id must be a positive integer"})
				return
			}
			ids = []int{id}
		}
		if err := table.ensure(ctx, pool); err != nil {
			writeDBError(w, err)
			return
		}
		rows, err := fetchWorld(ctx, pool, ids)
		if err != nil {
			writeDBError(w, err)
			return
		}
		if q.Has("queries") {
			writeDBJSON(w, http.StatusOK, rows)
		} else {
			writeDBJSON(w, http.StatusOK, rows[0])
		}
	})
}

// fetchWorld fetches the rows with the given ids: every query is sent
// before any reply is awaited.
func fetchWorld(ctx context.Context, pool *pgasync.Pool, ids []int) ([]worldRow, error) {
	fs := make([]*fdpoll.Future[*pgasync.Row], len(ids))
	for i, id := range ids {
		fs[i] = pool.QueryRow(ctx, "SELECT id, randomnumber FROM world WHERE id = $1", id)
	}
	out := make([]worldRow, len(ids))
	for i, f := range fs {
		row, err := fdpoll.Await(ctx, f)
		if err != nil {
			return nil, err
		}
		if err := row.Scan(&out[i].ID, &out[i].RandomNumber); err != nil {
			if errors.Is(err, pgasync.ErrNoRows) {
				return nil, fmt.Errorf("%w: no row with id %d", errNotFound, ids[i])
			}
			return nil, err
		}
	}
	return out, nil
}

var errNotFound = errors.New("not found")

// worldTable creates the world table once; concurrent first requests wait
// for the same creation, and a failed one is retried by the next request.
type worldTable struct {
	mu    sync.Mutex
	ready *fdpoll.Future[pgconn.CommandTag]
}

func (t *worldTable) ensure(ctx context.Context, pool *pgasync.Pool) error {
	t.mu.Lock()
	f := t.ready
	if f == nil || (f.Done() && f.Err() != nil) {
		// Not bound to this request: a client that goes away must not
		// cancel the creation the others wait for.
		f = pool.Exec(context.WithoutCancel(ctx), createWorld)
		t.ready = f
	}
	t.mu.Unlock()
	_, err := fdpoll.Await(ctx, f)
	return err
}

type dbError struct {
	Error    string `json:"error"`
	SQLState string `json:"sqlstate,omitempty"`
}

func writeDBError(w http.ResponseWriter, err error) {
	e := dbError{Error: err.Error()}
	status := http.StatusInternalServerError
	var pe *pgconn.PgError
	var ce *pgasync.ConnError
	switch {
	case errors.Is(err, errNotFound):
		status = http.StatusNotFound
	case errors.As(err, &ce), errors.Is(err, pgasync.ErrConnLost):
		status = http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	case errors.As(err, &pe):
		e.SQLState = pe.Code
	}
	writeDBJSON(w, status, e)
}

func writeDBJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// startDemoPostgres returns the DSN of the demo's database: PGASYNC_DSN or
// DATABASE_URL from the environment, or else a throwaway cluster started
// from the installed PostgreSQL (initdb and postgres, as the postgres user
// when running as root), which stop removes. stop is never nil.
func startDemoPostgres(ctx context.Context) (dsn string, stop func(), err error) {
	for _, key := range []string{"PGASYNC_DSN", "DATABASE_URL"} {
		if dsn := os.Getenv(key); dsn != "" {
			return dsn, func() {}, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return "", func() {}, fmt.Errorf("no PGASYNC_DSN or DATABASE_URL, and no throwaway cluster: %w", err)
	}
	return c.DSN(""), func() { c.Stop() }, nil
}
