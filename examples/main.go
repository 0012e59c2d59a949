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
	"github.com/yieldio/yieldio/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	flag.Parse()

	mux := newMux()
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
		log.Fatal(err)
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

// newMux mounts the demo's endpoints.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, usage(r.Host))
	})
	mux.HandleFunc("GET /wait", waitHandler)
	mux.HandleFunc("GET /ticks", ticksHandler)
	mux.HandleFunc("/hash", hashHandler)
	mux.Handle("GET /lookup", lookupHandler(dnsasync.Default()))
	return mux
}

func usage(host string) string {
	return fmt.Sprintf(`endpoints:
  curl 'http://%[1]s/wait?delay=20ms&timeout=100ms'   wait for a pipe with fdpoll.WaitFD
  curl -N 'http://%[1]s/ticks?n=5&every=200ms'        server-sent events on loop timers
  head -c 100000000 /dev/urandom | curl -T - http://%[1]s/hash   hash a streamed upload
  curl 'http://%[1]s/lookup?name=localhost&type=IP'   resolve a name with dnsasync
`, host)
}
