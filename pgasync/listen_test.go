package pgasync_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

func TestListenNotify(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 1)
	g := p.Config().Group
	ctx := testCtx(t)

	inTask(t, g.Loop(0), func(ctx context.Context) error {
		a, err := fdpoll.Await(ctx, p.Listen(ctx, "Chan A")) // quoted: case and space kept
		if err != nil {
			return err
		}
		a2, err := fdpoll.Await(ctx, p.Listen(ctx, "Chan A"))
		if err != nil {
			return err
		}
		b, err := fdpoll.Await(ctx, p.Listen(ctx, "b"))
		if err != nil {
			return err
		}
		// Waiting first, then the notification.
		next := a.Next(ctx)
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT pg_notify($1, $2)", "Chan A", "hello")); err != nil {
			return err
		}
		n, err := fdpoll.Await(ctx, next)
		if err != nil {
			return err
		}
		if n.Channel != "Chan A" || n.Payload != "hello" || n.PID == 0 {
			return fmt.Errorf("got %+v", n)
		}
		// The second listener of the channel got it too, queued.
		n, err = fdpoll.Await(ctx, a2.Next(ctx))
		if err != nil || n.Payload != "hello" {
			return fmt.Errorf("second listener: %+v %v", n, err)
		}
		// Several queued, in order, on the other channel.
		for i := range 3 {
			if _, err := fdpoll.Await(ctx, p.Exec(ctx, fmt.Sprintf("NOTIFY b, '%d'", i))); err != nil {
				return err
			}
		}
		for i := range 3 {
			n, err := fdpoll.Await(ctx, b.Next(ctx))
			if err != nil || n.Payload != fmt.Sprint(i) {
				return fmt.Errorf("b #%d: %+v %v", i, n, err)
			}
		}
		// Next with a context that ends: the context's error, and the
		// notification is not lost.
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = fdpoll.Await(ctx, b.Next(wctx))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("Next with a deadline: %v", err)
		}
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "NOTIFY b, 'late'")); err != nil {
			return err
		}
		if n, err := fdpoll.Await(ctx, b.Next(ctx)); err != nil || n.Payload != "late" {
			return fmt.Errorf("after a timed-out Next: %+v %v", n, err)
		}
		// Close.
		pending := a.Next(ctx)
		a.Close()
		if _, err := fdpoll.Await(ctx, pending); !errors.Is(err, pgasync.ErrListenerClosed) {
			return fmt.Errorf("pending Next on Close: %v", err)
		}
		if _, err := fdpoll.Await(ctx, a.Next(ctx)); !errors.Is(err, pgasync.ErrListenerClosed) {
			return fmt.Errorf("Next after Close: %v", err)
		}
		a2.Close()
		b.Close()
		return nil
	})
	// All listeners closed: UNLISTENed and the connection back in the pool.
	deadline := time.Now().Add(5 * time.Second)
	for {
		row := await(t, ctx, adminPool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'UNLISTEN%'", app))
		var n int
		if err := row.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			rows := await(t, ctx, adminPool.Query(ctx, "SELECT state, query FROM pg_stat_activity WHERE application_name = $1", app))
			for rows.Next() {
				v, _ := rows.Values()
				t.Log(v)
			}
			t.Fatal("no UNLISTEN after the last listener closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Listening from plain goroutines, notifications from many senders.
func TestListenFromGoroutine(t *testing.T) {
	p, _ := newPool(t, 2)
	ctx := testCtx(t)
	l := await(t, ctx, p.Listen(ctx, "many"))
	defer l.Close()
	const n = 200
	for i := range n {
		go p.Exec(ctx, "SELECT pg_notify('many', $1)", fmt.Sprint(i))
	}
	seen := make(map[string]bool)
	for range n {
		nt := await(t, ctx, l.Next(ctx))
		seen[nt.Payload] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct notifications", len(seen))
	}
}

func TestListenErrors(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	if _, err := fdpoll.Await(ctx, p.Listen(ctx, "")); err == nil {
		t.Fatal("empty channel accepted")
	}
	if _, err := fdpoll.Await(ctx, p.Listen(ctx, "a\x00b")); err == nil {
		t.Fatal("channel with NUL accepted")
	}
	// A channel name with a quote is quoted, not injected.
	l := await(t, ctx, p.Listen(ctx, `x"; DROP TABLE y; --`))
	await(t, ctx, p.Exec(ctx, "SELECT pg_notify($1, 'q')", `x"; DROP TABLE y; --`))
	if n := await(t, ctx, l.Next(ctx)); n.Payload != "q" {
		t.Fatalf("got %+v", n)
	}
	l.Close()
}
