package server

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

// portable is a handler written for yieldio that also runs on net/http:
// where it waits (the "/await" case) it awaits a future, which suspends it
// on yieldio and blocks it on net/http.
func portable() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!DOCTYPE html><html><body>hi</body></html>")
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		for i := range 100 {
			fmt.Fprintf(w, "%099d\n", i)
		}
	})
	mux.HandleFunc("/exactly2048", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2048)))
	})
	mux.HandleFunc("/2049", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 2049)))
	})
	mux.HandleFunc("/cl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10000")
		for range 100 {
			w.Write([]byte(strings.Repeat("y", 100)))
		}
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.WriteHeader(http.StatusNoContent)
		io.WriteString(w, "ignored")
	})
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/small", http.StatusFound)
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "second")
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "data")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	mux.HandleFunc("/await", func(w http.ResponseWriter, r *http.Request) {
		f := fdpoll.NewFuture[string]()
		go func() {
			time.Sleep(5 * time.Millisecond)
			f.Complete("from a future", nil)
		}()
		v, err := fdpoll.Await(r.Context(), f)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/late-header", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Early", "yes")
		io.WriteString(w, "body")
		w.Header().Set("X-Late", "no")
	})
	mux.HandleFunc("/multi", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Add("X-Zed", "z")
		w.Header().Add("X-Alpha", "a")
		io.WriteString(w, "cookies")
	})
	mux.HandleFunc("/status299", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(299)
		io.WriteString(w, "odd")
	})
	mux.HandleFunc("/nosniff", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil
		io.WriteString(w, "<html>")
	})
	mux.HandleFunc("/mydate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Tue, 01 Jan 2030 00:00:00 GMT")
		io.WriteString(w, "dated")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %s %v trailer=%v", len(b), b, err, r.Trailer)
	})
	mux.HandleFunc("/unread", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "did not read the body")
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %q host=%s uri=%s close=%v cl=%d te=%v q=%s",
			r.Method, r.URL.Path, r.Proto, r.Header.Get("X-Test"), r.Host, r.RequestURI, r.Close,
			r.ContentLength, r.TransferEncoding, r.URL.Query().Get("q"))
	})
	return mux
}

// A normalized response, for comparison.
type summary struct {
	Status        string
	Proto         string
	Header        http.Header
	ContentLength int64
	Chunked       bool
	Close         bool
	Body          string
	Trailer       http.Header
}

func summarize(t *testing.T, addr, raw, method string) []summary {
	t.Helper()
	resps, bodies, _ := exchangeN(t, addr, raw, 1, method, method)
	var out []summary
	for i, r := range resps {
		h := r.Header.Clone()
		h.Del("Date")
		out = append(out, summary{
			Status: r.Status, Proto: r.Proto, Header: h, ContentLength: r.ContentLength,
			Chunked: slices.Contains(r.TransferEncoding, "chunked"), Close: r.Close,
			Body: bodies[i], Trailer: r.Trailer,
		})
	}
	return out
}

func TestSameHandlerSameResponses(t *testing.T) {
	h := portable()
	std := httptest.NewServer(h)
	t.Cleanup(std.Close)
	ours := start(t, h)
	stdAddr := strings.TrimPrefix(std.URL, "http://")

	var paths []string
	for _, p := range []string{"small", "html", "large", "exactly2048", "2049", "cl", "json", "nocontent",
		"notmodified", "redirect", "error", "empty", "flush", "trailer", "await", "close", "late-header",
		"multi", "status299", "nosniff", "mydate", "info?q=1", "unread"} {
		paths = append(paths, "/"+p)
	}
	type request struct{ name, raw, method string }
	var reqs []request
	for _, p := range paths {
		reqs = append(reqs,
			request{"GET " + p, "GET " + p + " HTTP/1.1\r\nHost: example.com\r\nX-Test: 1\r\n\r\n", "GET"},
			request{"HEAD " + p, "HEAD " + p + " HTTP/1.1\r\nHost: example.com\r\n\r\n", "HEAD"},
			request{"1.0 " + p, "GET " + p + " HTTP/1.0\r\n\r\n", "GET"},
			request{"1.0 keep-alive " + p, "GET " + p + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET"},
		)
	}
	reqs = append(reqs,
		request{"POST echo", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "POST"},
		request{"chunked echo", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: v\r\n\r\n", "POST"},
		request{"unread body", "POST /unread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "POST"},
		request{"absolute form", "GET http://other.example/info?q=abs HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET"},
		request{"connection close", "GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET"},
		request{"options star", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS"},
		request{"not found", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
	)
	for _, rq := range reqs {
		t.Run(rq.name, func(t *testing.T) {
			t.Parallel()
			want := summarize(t, stdAddr, rq.raw, rq.method)
			got := summarize(t, ours.addr, rq.raw, rq.method)
			if len(want) == 0 {
				t.Fatal("no response from net/http")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
				for i := range min(len(got), len(want)) {
					for _, k := range slices.Sorted(maps.Keys(want[i].Header)) {
						if !reflect.DeepEqual(got[i].Header[k], want[i].Header[k]) {
							t.Logf("  header %s: got %q want %q", k, got[i].Header[k], want[i].Header[k])
						}
					}
				}
			}
		})
	}
}
