package pgasync

import (
	"context"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
)

// ExecPastTxChecks sends sql as a statement of tx without Tx.Exec's own
// check that the transaction is still open: a statement that passed that
// check just before Commit and reached the loop just after it, made
// deterministic for the test.
func ExecPastTxChecks(ctx context.Context, tx *Tx, sql string) *fdpoll.Future[pgconn.CommandTag] {
	r := newExecReq(ctx, kindExec, sql, nil)
	r.target, r.tx = tx.c, tx.st
	tx.p.dispatch(r, tx.ls, tx.ls.loop.Current())
	return r.tagF
}
