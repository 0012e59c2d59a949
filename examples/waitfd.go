package main

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// waitHandler shows the raw readiness handle: it makes a pipe, has another
// goroutine write to it after ?delay, and waits for it to become readable
// with WaitFD and ?timeout. While it waits, its loop serves other requests.
//
//	curl 'localhost:8080/wait?delay=20ms&timeout=100ms'
func waitHandler(w http.ResponseWriter, r *http.Request) {
	delay, err1 := time.ParseDuration(query(r, "delay", "20ms"))
	timeout, err2 := time.ParseDuration(query(r, "timeout", "100ms"))
	if err1 != nil || err2 != nil || delay < 0 || timeout <= 0 || delay > time.Minute || timeout > time.Minute {
		http.Error(w, "delay and timeout must be durations up to a minute, like 20ms", http.StatusBadRequest)
		return
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer pr.Close()
	go func() {
		// Ends by itself within the bounded delay.
		defer pw.Close()
		time.Sleep(delay)
		pw.Write([]byte("ping"))
	}()

	start := time.Now()
	err = fdpoll.WaitFD(r.Context(), int(pr.Fd()), fdpoll.Readable, timeout)
	took := time.Since(start).Round(time.Millisecond)
	switch err {
	case nil:
		buf := make([]byte, 16)
		n, _ := pr.Read(buf)
		fmt.Fprintf(w, "readable after %v: read %q\n", took, buf[:n])
	case fdpoll.ErrTimeout:
		fmt.Fprintf(w, "timed out after %v (the writer waits %v)\n", took, delay)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}

func query(r *http.Request, key, def string) string {
	if v := r.URL.Query().Get(key); v != "" {
		return v
	}
	return def
}
