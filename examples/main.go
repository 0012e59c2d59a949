// Command examples is yieldio's demo: an HTTP server on yieldio's loops
// whose endpoints each show a capability. It runs until interrupted.
//
//	go run ./examples/...
//	curl localhost:8080/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/yieldio/yieldio/dnsasync"
	"github.com/yieldio/yieldio/pgasync"
	"github.com/yieldio/yieldio/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	flag.Parse()

	// The /db endpoint's database: PGASYNC_DSN or DATABASE_URL, or else a
	// throwaway cluster that is removed on exit. Without either the other
	// endpoints still run and /db answers 503 with the reason.
	var db http.Handler
	dsn, stopPostgres, err := startDemoPostgres(context.Background())
	defer stopPostgres()
	if err == nil {
		var pool *pgasync.Pool
		if pool, err = pgasync.Open(dsn); err == nil {
			defer pool.Close()
			db = dbHandler(pool)
		}
	}
	if err != nil {
		log.Printf("/db disabled: %v", err)
		db = unavailable(err)
	}

	mux := newMux(db)
	s := &server.Server{
		Addr:              *addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe() }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	fmt.Printf("yieldio demo on http://%s/ (Ctrl-C to stop)\n%s", *addr, usage(*addr))
	select {
	case err := <-errc:
		log.Print(err)
		return
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		log.Print(err)
	}
	if err := <-errc; err != nil && !errors.Is(err, server.ErrServerClosed) {
		log.Print(err)
	}
}

// newMux mounts the demo's endpoints; db serves /db.
func newMux(db http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, usage(r.Host))
	})
	mux.HandleFunc("GET /wait", waitHandler)
	mux.HandleFunc("GET /ticks", ticksHandler)
	mux.HandleFunc("/hash", hashHandler)
	mux.Handle("GET /lookup", lookupHandler(dnsasync.Default()))
	mux.Handle("/db", db)
	return mux
}

// unavailable answers every request with 503 and the reason.
func unavailable(reason error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeDBJSON(w, http.StatusServiceUnavailable, dbError{Error: reason.Error()})
	})
}

func usage(host string) string {
	return fmt.Sprintf(`endpoints:
  curl 'http://%[1]s/wait?delay=20ms&timeout=100ms'   wait for a pipe with fdpoll.WaitFD
  curl -N 'http://%[1]s/ticks?n=5&every=200ms'        server-sent events on loop timers
  head -c 100000000 /dev/urandom | curl -T - http://%[1]s/hash   hash a streamed upload
  curl 'http://%[1]s/lookup?name=localhost&type=IP'   resolve a name with dnsasync
  curl 'http://%[1]s/db?id=42'                        one Postgres row with pgasync
  curl 'http://%[1]s/db?queries=20'                   20 pipelined queries, awaited together
`, host)
}
