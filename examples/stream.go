package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// ticksHandler streams server-sent events: one every ?every, ?n of them.
// Between events the handler sleeps on a loop timer, holding no goroutine.
//
//	curl -N 'localhost:8080/ticks?n=5&every=200ms'
func ticksHandler(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(query(r, "n", "5"))
	every, err2 := time.ParseDuration(query(r, "every", "200ms"))
	if err != nil || err2 != nil || n < 1 || n > 1000 || every < time.Millisecond || every > time.Minute {
		http.Error(w, "n must be 1..1000 and every a duration from 1ms to 1m", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "id: %d\ndata: tick %d of %d at %s\n\n", i, i, n, time.Now().Format(time.RFC3339Nano))
		w.(http.Flusher).Flush()
		if i < n {
			if err := fdpoll.Sleep(r.Context(), every); err != nil {
				return // the client went away
			}
		}
	}
}

// hashHandler hashes an upload of any size as it streams in: the body is
// read a buffer at a time, and the connection reads no faster than the hash
// consumes.
//
//	head -c 100000000 /dev/urandom | curl -T - localhost:8080/hash
func hashHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "upload with POST or PUT", http.StatusMethodNotAllowed)
		return
	}
	h := sha256.New()
	start := time.Now()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "sha256 %x of %d bytes in %v\n", h.Sum(nil), n, time.Since(start).Round(time.Millisecond))
}
