package pgasync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
	"github.com/yieldio/yieldio/server"
)

// rowSource generates COPY text rows "i\trow-i\n" for i in [1, n] as it is
// read: nothing is held in memory.
type rowSource struct {
	i, n int
	buf  []byte
	fail error // returned once half the rows are out, if set
}

func (s *rowSource) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.i < s.n {
		if s.fail != nil && s.i == s.n/2 {
			break
		}
		s.i++
		s.buf = strconv.AppendInt(s.buf, int64(s.i), 10)
		s.buf = append(s.buf, "\trow-"...)
		s.buf = strconv.AppendInt(s.buf, int64(s.i), 10)
		s.buf = append(s.buf, '\n')
	}
	if len(s.buf) == 0 {
		if s.fail != nil {
			return 0, s.fail
		}
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	return n, nil
}

// checksumWriter counts lines and checksums what it is given.
type checksumWriter struct {
	lines int
	crc   uint32
	fail  error
}

func (w *checksumWriter) Write(p []byte) (int, error) {
	if w.fail != nil && w.lines > 1000 {
		return 0, w.fail
	}
	w.lines += bytes.Count(p, []byte{'\n'})
	w.crc = crc32.Update(w.crc, crc32.IEEETable, p)
	return len(p), nil
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// A million rows each way, streamed: the heap does not grow with the data.
func TestCopyMillionRowsBothWays(t *testing.T) {
	leakCheck(t)
	p, _ := newPool(t, 1)
	g := p.Config().Group
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS copy_big; CREATE UNLOGGED TABLE copy_big (id int, v text)"))
	const n = 1_000_000

	before := heapInUse()
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}()
	var copied int64
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		var err error
		copied, err = fdpoll.Await(ctx, p.CopyFrom(ctx, "COPY copy_big (id, v) FROM STDIN", &rowSource{n: n}))
		return err
	})
	close(stop)
	<-sampled
	if copied != n {
		t.Fatalf("CopyFrom copied %d rows", copied)
	}
	// The data is ~15 MB; a COPY holding it would show.
	if growth := int64(peak) - int64(before); growth > 24<<20 {
		t.Errorf("heap grew by %d MiB during CopyFrom", growth>>20)
	}
	if c := count(t, p, "copy_big"); c != n {
		t.Fatalf("table has %d rows", c)
	}

	var want checksumWriter
	io.Copy(&want, &rowSource{n: n})
	var got checksumWriter
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		rows, err := fdpoll.Await(ctx, p.CopyTo(ctx, "COPY (SELECT id, v FROM copy_big ORDER BY id) TO STDOUT", &got))
		if err != nil {
			return err
		}
		if rows != n {
			return fmt.Errorf("CopyTo copied %d rows", rows)
		}
		return nil
	})
	if got.lines != n || got.crc != want.crc {
		t.Fatalf("CopyTo: %d lines, crc %x; want %d, %x", got.lines, got.crc, n, want.crc)
	}
}

func TestCopyErrors(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 1, "pgasync_max_pinned_conns_per_loop=1")
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS copy_err; CREATE TABLE copy_err (id int, v text)"))

	// The reader fails half way: CopyFail, nothing committed, the error is
	// the reader's.
	readErr := errors.New("upload interrupted")
	_, err := fdpoll.Await(ctx, p.CopyFrom(ctx, "COPY copy_err FROM STDIN", &rowSource{n: 100000, fail: readErr}))
	if !errors.Is(err, readErr) {
		t.Fatalf("reader error: got %v", err)
	}
	if c := count(t, p, "copy_err"); c != 0 {
		t.Fatalf("%d rows after a failed COPY", c)
	}

	// Bad data: the server's error.
	_, err = fdpoll.Await(ctx, p.CopyFrom(ctx, "COPY copy_err FROM STDIN", strings.NewReader("1\tok\nx\tbad\n")))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22P02" {
		t.Fatalf("bad data: got %v", err)
	}
	// No such table: fails before any data.
	_, err = fdpoll.Await(ctx, p.CopyFrom(ctx, "COPY no_such FROM STDIN", strings.NewReader("1\n")))
	if !errors.As(err, &pe) || pe.Code != "42P01" {
		t.Fatalf("missing table: got %v", err)
	}

	// The writer fails: the server is cancelled, the error is the writer's.
	writeErr := errors.New("client went away")
	_, err = fdpoll.Await(ctx, p.CopyTo(ctx, "COPY (SELECT g FROM generate_series(1, 1000000) g) TO STDOUT", &checksumWriter{fail: writeErr}))
	if !errors.Is(err, writeErr) {
		t.Fatalf("writer error: got %v", err)
	}

	// COPY through Exec is refused with a clear error.
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "COPY copy_err TO STDOUT")); !errors.Is(err, pgasync.ErrCopyStatement) {
		t.Fatalf("COPY TO through Exec: %v", err)
	}
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "COPY copy_err FROM STDIN")); !errors.Is(err, pgasync.ErrCopyStatement) {
		t.Fatalf("COPY FROM through Exec: %v", err)
	}

	// After all that, the single pinned connection still works.
	n := await(t, ctx, p.CopyFrom(ctx, "COPY copy_err FROM STDIN", strings.NewReader("1\tone\n2\ttwo\n")))
	if n != 2 || count(t, p, "copy_err") != 2 {
		t.Fatalf("COPY after errors: %d", n)
	}
	if b := backends(t, app); b > 2 {
		t.Fatalf("%d backends", b)
	}
}

// Cancelling a COPY that the server holds up (a lock) cancels it on the
// server and keeps the connection.
func TestCopyCancelled(t *testing.T) {
	p, app := newPool(t, 1, "pgasync_max_pinned_conns_per_loop=1")
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS copy_lock; CREATE TABLE copy_lock (id int)"))
	tx := await(t, ctx, p.Begin(ctx))
	await(t, ctx, tx.Exec(ctx, "LOCK TABLE copy_lock"))
	p2, _ := newPool(t, 1, "pgasync_max_pinned_conns_per_loop=1", "application_name="+app+"_2")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := fdpoll.Await(ctx, p2.CopyFrom(cctx, "COPY copy_lock FROM STDIN", strings.NewReader("1\n")))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	await(t, ctx, tx.Rollback(ctx))
	if n := await(t, ctx, p2.CopyFrom(ctx, "COPY copy_lock FROM STDIN", strings.NewReader("1\n2\n"))); n != 2 {
		t.Fatalf("after cancel: %d rows", n)
	}
}

// An upload to a yieldio server handler streams from the request body
// (a wsgiinput.Body) straight into a table.
func TestCopyFromRequestBody(t *testing.T) {
	p, _ := newPool(t, 2)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS copy_upload; CREATE UNLOGGED TABLE copy_upload (id int, v text)"))
	sg, err := fdpoll.NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.Close()
	srv := &server.Server{Addr: "127.0.0.1:0", Group: sg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := fdpoll.Await(r.Context(), p.CopyFrom(r.Context(), "COPY copy_upload FROM STDIN", r.Body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d", n)
	})}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	defer func() {
		srv.Close()
		<-errc
	}()
	deadline := time.Now().Add(testTimeout)
	for len(srv.Addrs()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	const n = 300_000
	before := heapInUse()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.Addrs()[0].String()+"/upload", io.NopCloser(&rowSource{n: n}))
	req.ContentLength = -1 // chunked
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != strconv.Itoa(n) {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	if growth := int64(heapInUse()) - int64(before); growth > 16<<20 {
		t.Errorf("heap grew by %d MiB", growth>>20)
	}
	if c := count(t, p, "copy_upload"); c != n {
		t.Fatalf("%d rows", c)
	}
}
