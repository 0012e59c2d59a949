package pgasync_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// count returns the number of rows in table.
func count(t testing.TB, p *pgasync.Pool, table string) int {
	t.Helper()
	return queryInt(t, p, "SELECT count(*) FROM "+table)
}

func TestTransactions(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 2)
	g := p.Config().Group
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS tx_t; CREATE TABLE tx_t (id int PRIMARY KEY)"))

	inTask(t, g.Loop(0), func(ctx context.Context) error {
		// Commit: visible to others afterwards, not before.
		tx, err := fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "INSERT INTO tx_t VALUES ($1), ($2)", 1, 2)); err != nil {
			return err
		}
		if n := count(t, p, "tx_t"); n != 0 {
			return fmt.Errorf("uncommitted rows visible: %d", n)
		}
		row, err := fdpoll.Await(ctx, tx.QueryRow(ctx, "SELECT count(*) FROM tx_t"))
		if err != nil {
			return err
		}
		var n int
		if err := row.Scan(&n); err != nil || n != 2 {
			return fmt.Errorf("inside the transaction: %d %v", n, err)
		}
		if _, err := fdpoll.Await(ctx, tx.Commit(ctx)); err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "SELECT 1")); !errors.Is(err, pgasync.ErrTxDone) {
			return fmt.Errorf("Exec after Commit: %v", err)
		}
		if _, err := fdpoll.Await(ctx, tx.Rollback(ctx)); !errors.Is(err, pgasync.ErrTxDone) {
			return fmt.Errorf("Rollback after Commit: %v", err)
		}

		// Rollback.
		tx, err = fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "INSERT INTO tx_t VALUES ($1)", 3)); err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx.Rollback(ctx)); err != nil {
			return err
		}

		// A failed statement: the commit rolls back.
		tx, err = fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		fdpoll.Await(ctx, tx.Exec(ctx, "INSERT INTO tx_t VALUES ($1)", 4))
		_, err = fdpoll.Await(ctx, tx.Exec(ctx, "INSERT INTO tx_t VALUES ($1)", 1))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23505" {
			return fmt.Errorf("duplicate key in a transaction: %v", err)
		}
		_, err = fdpoll.Await(ctx, tx.Exec(ctx, "SELECT 1"))
		if !errors.As(err, &pe) || pe.Code != "25P02" {
			return fmt.Errorf("statement in a failed transaction: %v", err)
		}
		if _, err := fdpoll.Await(ctx, tx.Commit(ctx)); !errors.Is(err, pgasync.ErrTxRolledBack) {
			return fmt.Errorf("Commit of a failed transaction: %v", err)
		}
		return nil
	})
	if n := count(t, p, "tx_t"); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	if n := inTransaction(t, app); n != 0 {
		t.Fatalf("%d connections left in a transaction", n)
	}
}

func TestTransactionOptionsAndPipelining(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	tx := await(t, ctx, p.BeginTx(ctx, pgasync.TxOptions{IsoLevel: "serializable", ReadOnly: true}))
	// Several statements in flight at once on the transaction's connection,
	// in order.
	f1 := tx.QueryRow(ctx, "SHOW transaction_isolation")
	f2 := tx.QueryRow(ctx, "SHOW transaction_read_only")
	f3 := tx.Exec(ctx, "CREATE TEMP TABLE nope (x int)")
	var iso, ro string
	if err := await(t, ctx, f1).Scan(&iso); err != nil || iso != "serializable" {
		t.Fatalf("isolation %q %v", iso, err)
	}
	if err := await(t, ctx, f2).Scan(&ro); err != nil || ro != "on" {
		t.Fatalf("read only %q %v", ro, err)
	}
	var pe *pgconn.PgError
	if _, err := fdpoll.Await(ctx, f3); !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("write in a read-only transaction: %v", err)
	}
	await(t, ctx, tx.Rollback(ctx))
	if _, err := fdpoll.Await(ctx, p.BeginTx(ctx, pgasync.TxOptions{IsoLevel: "bogus"})); err == nil {
		t.Fatal("bogus isolation level accepted")
	}
}

// A transaction left open by a task that returned is rolled back, and its
// connection is reused.
func TestAbandonedTransactionRolledBack(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 1, "pgasync_max_pinned_conns_per_loop=1")
	g := p.Config().Group
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS tx_abandon; CREATE TABLE tx_abandon (id int)"))
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		tx, err := fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		_, err = fdpoll.Await(ctx, tx.Exec(ctx, "INSERT INTO tx_abandon VALUES (1)"))
		return err // neither Commit nor Rollback
	})
	// With one pinned connection per loop, this Begin gets it only once the
	// abandoned transaction has been rolled back.
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		tx, err := fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		row, err := fdpoll.Await(ctx, tx.QueryRow(ctx, "SELECT count(*) FROM tx_abandon"))
		if err != nil {
			return err
		}
		var n int
		if err := row.Scan(&n); err != nil || n != 0 {
			return fmt.Errorf("abandoned insert visible: %d %v", n, err)
		}
		_, err = fdpoll.Await(ctx, tx.Commit(ctx))
		return err
	})
	if n := count(t, p, "tx_abandon"); n != 0 {
		t.Fatalf("abandoned transaction committed %d rows", n)
	}
	if n := inTransaction(t, app); n != 0 {
		t.Fatalf("%d connections left in a transaction", n)
	}
}

// More transactions than pinned connections: they wait their turn.
func TestTransactionsWaitForPinnedConnections(t *testing.T) {
	p, app := newPool(t, 1, "pgasync_max_pinned_conns_per_loop=2")
	g := p.Config().Group
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS tx_wait; CREATE TABLE tx_wait (id int)"))
	fs := make([]*fdpoll.Future[struct{}], 20)
	for i := range fs {
		fs[i] = g.Loop(0).Spawn(ctx, func(ctx context.Context) error {
			tx, err := fdpoll.Await(ctx, p.Begin(ctx))
			if err != nil {
				return err
			}
			if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "INSERT INTO tx_wait VALUES ($1)", i)); err != nil {
				return err
			}
			if err := fdpoll.Sleep(ctx, time.Millisecond); err != nil {
				return err
			}
			_, err = fdpoll.Await(ctx, tx.Commit(ctx))
			return err
		})
	}
	for _, f := range fs {
		if _, err := fdpoll.Await(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, p, "tx_wait"); n != 20 {
		t.Fatalf("%d rows", n)
	}
	if b := backends(t, app); b > 4 {
		t.Fatalf("%d backends, want at most 2 pinned + 2 shared", b)
	}
}

// A statement whose call returned before Commit was made runs inside the
// transaction, even when it still waits in the loop's inbox as Commit is
// made on the loop.
func TestTxStatementRacingCommit(t *testing.T) {
	p, _ := newPool(t, 1, "pgasync_max_pinned_conns_per_loop=1")
	ctx := testCtx(t)
	tx := await(t, ctx, p.Begin(ctx))
	time.Sleep(10 * time.Millisecond) // now() (the transaction's start) is then before statement_timestamp()

	var late *fdpoll.Future[*pgasync.Row]
	var commit *fdpoll.Future[struct{}]
	inTask(t, p.Config().Group.Loop(0), func(tctx context.Context) error {
		// This task holds the loop: the plain goroutine's statement waits
		// in the loop's inbox while Commit is made on the loop.
		made := make(chan struct{})
		go func() {
			late = tx.QueryRow(ctx, "SELECT now() = statement_timestamp()")
			close(made)
		}()
		<-made
		commit = tx.Commit(ctx)
		return nil
	})
	if _, err := fdpoll.Await(ctx, commit); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	row, err := fdpoll.Await(ctx, late)
	if err != nil {
		t.Fatalf("a statement made before Commit: %v", err)
	}
	var outside bool
	if err := row.Scan(&outside); err != nil {
		t.Fatal(err)
	}
	if outside {
		t.Fatal("a statement made before Commit ran after COMMIT, outside the transaction")
	}

	// One that reaches the loop after the COMMIT (made concurrently with
	// Commit) fails: it must not run outside the transaction, or inside
	// the connection's next owner's.
	if _, err := fdpoll.Await(ctx, pgasync.ExecPastTxChecks(ctx, tx, "SELECT 1")); !errors.Is(err, pgasync.ErrTxDone) {
		t.Fatalf("a statement reaching the loop after COMMIT: got %v, want ErrTxDone", err)
	}
}

// CopyFrom in a transaction followed at once by Commit, without waiting for
// the copy: the COMMIT waits for the copy to end rather than being written
// into it (which breaks the connection).
func TestTxCommitRightAfterCopyFrom(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS tx_copy_commit; CREATE TABLE tx_copy_commit (x int)"))
	tx := await(t, ctx, p.Begin(ctx))
	copied := tx.CopyFrom(ctx, "COPY tx_copy_commit FROM STDIN", strings.NewReader("1\n2\n3\n"))
	committed := tx.Commit(ctx)
	if n, err := fdpoll.Await(ctx, copied); err != nil || n != 3 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	if _, err := fdpoll.Await(ctx, committed); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if n := count(t, p, "tx_copy_commit"); n != 3 {
		t.Fatalf("%d rows committed, want 3", n)
	}
}
