package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
	"github.com/yieldio/yieldio/server"
)

// The /db endpoint against a throwaway cluster, on yieldio's server and on
// net/http alike.
func TestDBHandler(t *testing.T) {
	t.Setenv("PGASYNC_DSN", "")
	t.Setenv("DATABASE_URL", "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dsn, stop, err := startDemoPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	g, err := fdpoll.NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg, err := pgasync.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Group = g
	pool, err := pgasync.OpenConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	h := dbHandler(pool)
	s := &server.Server{Addr: "127.0.0.1:0", Handler: h, Group: g}
	go s.ListenAndServe()
	defer s.Close()
	for len(s.Addrs()) == 0 {
		time.Sleep(time.Millisecond)
	}
	std := httptest.NewServer(h)
	defer std.Close()

	for name, base := range map[string]string{"yieldio": "http://" + s.Addrs()[0].String(), "net/http": std.URL} {
		t.Run(name, func(t *testing.T) {
			c := &http.Client{Timeout: 30 * time.Second}
			get := func(path string, v any) int {
				t.Helper()
				resp, err := c.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if v != nil {
					if err := json.Unmarshal(b, v); err != nil {
						t.Fatalf("%s: %v: %s", path, err, b)
					}
				}
				return resp.StatusCode
			}
			// Concurrent first requests: the table is created once.
			var wg sync.WaitGroup
			for i := 1; i <= 20; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var row worldRow
					if code := get("/db?id="+strconv.Itoa(i), &row); code != 200 || row.ID != int32(i) {
						t.Errorf("id %d: %d %+v", i, code, row)
					}
				}()
			}
			wg.Wait()
			var rows []worldRow
			if code := get("/db?queries=50", &rows); code != 200 || len(rows) != 50 {
				t.Fatalf("queries=50: %d, %d rows", code, len(rows))
			}
			for _, r := range rows {
				if r.ID < 1 || r.ID > worldRows {
					t.Fatalf("row %+v", r)
				}
			}
			var e dbError
			for path, want := range map[string]int{
				"/db?id=abc": 400, "/db?id=0": 400, "/db": 400, "/db?queries=0": 400, "/db?queries=501": 400,
				"/db?id=20000": 404,
			} {
				if code := get(path, &e); code != want || e.Error == "" {
					t.Errorf("%s: %d %+v, want %d", path, code, e, want)
				}
			}
		})
	}
}
