package pgasync_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// slowCancelProxy forwards connections to the server at target, holding
// back each CancelRequest by delay: the cancel of a statement arrives after
// that statement has ended on its own.
type slowCancelProxy struct {
	ln    net.Listener
	delay time.Duration
	wg    sync.WaitGroup
}

func startSlowCancelProxy(t *testing.T, target string, delay time.Duration) *slowCancelProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowCancelProxy{ln: ln, delay: delay}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c, target)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *slowCancelProxy) forward(c net.Conn, target string) {
	defer c.Close()
	var first [8]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return
	}
	if binary.BigEndian.Uint32(first[4:]) == 80877102 { // CancelRequest
		time.Sleep(p.delay)
	}
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	if _, err := s.Write(first[:]); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(s, c)
		s.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, s)
	c.Close()
	<-done
}

// slowCancelPool opens a pool on one loop whose CancelRequests reach the
// test cluster 300 ms late.
func slowCancelPool(t *testing.T) *pgasync.Pool {
	t.Helper()
	needCluster(t)
	u, err := url.Parse(baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startSlowCancelProxy(t, u.Host, 300*time.Millisecond)
	u.Host = proxy.ln.Addr().String()
	return newPoolDSN(t, 1, u.String())
}

// A CancelRequest that arrives after its statement has ended must not hit
// the next statement on the connection: a pinned connection holds its next
// request until the server has acted on the cancel.
func TestLateCancelDoesNotHitNextStatement(t *testing.T) {
	p := slowCancelPool(t)
	ctx := testCtx(t)

	tx := await(t, ctx, p.Begin(ctx))
	// The caller gives up at 20 ms; the statement ends by itself at 100
	// ms; the cancel reaches the server at about 320 ms.
	qctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err := fdpoll.Await(qctx, tx.Exec(qctx, "SELECT pg_sleep(0.1)"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first statement: got %v, want DeadlineExceeded", err)
	}
	// Sent right away, this would be running when the cancel arrives.
	start := time.Now()
	if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "SELECT pg_sleep(0.4)")); err != nil {
		t.Fatalf("next statement hit by the late cancel: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("next statement done in %v: it did not wait for the cancel", d)
	}
	await(t, ctx, tx.Commit(ctx))
}

// Two statements of a transaction whose context ends while both are in
// flight: the first one's cancel, once acted on, must not release the
// statements held back while the second one's cancel is still to come.
func TestTwoLateCancels(t *testing.T) {
	p := slowCancelPool(t)
	ctx := testCtx(t)

	tx := await(t, ctx, p.Begin(ctx))
	qctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	first := tx.Exec(qctx, "SELECT pg_sleep(0.1)")
	second := tx.Exec(qctx, "SELECT pg_sleep(0.1)")
	for _, f := range []*fdpoll.Future[pgconn.CommandTag]{first, second} {
		if _, err := fdpoll.Await(ctx, f); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("statement whose context ended: got %v, want DeadlineExceeded", err)
		}
	}
	cancel()
	if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "SELECT pg_sleep(0.4)")); err != nil {
		t.Fatalf("next statement hit by a late cancel: %v", err)
	}
	await(t, ctx, tx.Commit(ctx))
}
