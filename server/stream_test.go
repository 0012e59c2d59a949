package server

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

const gib = 1 << 30

// heapWatch samples the heap in use until stopped and reports the largest
// growth over the baseline.
func heapWatch() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
					peak.Store(ms.HeapInuse - base)
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// 1 GiB is uploaded and hashed by a handler; the server's heap grows by
// less than 32 MiB, since nothing holds more than a buffer of it.
func TestStreamUpload1GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x %v", n, h.Sum(nil), err)
	}))
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	want := sha256.New()
	for range gib / len(chunk) {
		want.Write(chunk)
	}
	for _, chunked := range []bool{false, true} {
		t.Run("chunked="+strconv.FormatBool(chunked), func(t *testing.T) {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stop := heapWatch()
			start := time.Now()
			go func() {
				bw := bufio.NewWriterSize(c, 64<<10)
				if chunked {
					io.WriteString(bw, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
				} else {
					fmt.Fprintf(bw, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", gib)
				}
				for range gib / len(chunk) {
					if chunked {
						fmt.Fprintf(bw, "%x\r\n", len(chunk))
					}
					bw.Write(chunk)
					if chunked {
						io.WriteString(bw, "\r\n")
					}
				}
				if chunked {
					io.WriteString(bw, "0\r\n\r\n")
				}
				bw.Flush()
			}()
			c.SetReadDeadline(time.Now().Add(5 * time.Minute))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			growth := stop()
			if exp := fmt.Sprintf("%d %x <nil>", gib, want.Sum(nil)); string(body) != exp {
				t.Fatalf("handler saw %q, want %q", body, exp)
			}
			t.Logf("1 GiB in %v, heap growth %.1f MiB", time.Since(start).Round(time.Millisecond), float64(growth)/(1<<20))
			if growth > 32<<20 {
				t.Fatalf("heap grew by %d MiB", growth>>20)
			}
		})
	}
}

// A 1 GiB response to a client that stops reading for a while: the handler
// is held back by the connection's high-water mark, so memory stays
// bounded, and every byte arrives.
func TestStreamDownload1GiBToSlowReader(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	var written atomic.Int64
	ts := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 256<<10)
		for i := range chunk {
			chunk[i] = byte(i * 13)
		}
		w.Header().Set("Content-Length", strconv.Itoa(gib))
		for n := 0; n < gib; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			written.Add(int64(len(chunk)))
		}
	}))
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := heapWatch()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	// Do not read for a while: the handler must stall, not buffer.
	time.Sleep(300 * time.Millisecond)
	stalled := written.Load()
	if stalled > 64<<20 {
		t.Fatalf("handler wrote %d MiB to a client that read nothing", stalled>>20)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	growth := stop()
	if n != gib || err != nil {
		t.Fatalf("read %d bytes, %v", n, err)
	}
	t.Logf("handler stalled at %d KiB while the client slept; heap growth %.1f MiB", stalled>>10, float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Fatalf("heap grew by %d MiB", growth>>20)
	}
}
