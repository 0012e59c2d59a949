// Package pgasync is a PostgreSQL client whose calls return futures, built
// for yieldio's event loops: a handler running as a task awaits a query
// without blocking its loop, and the queries of all the loop's tasks share a
// few pipelined connections.
//
// # Use
//
//	pool, err := pgasync.Open("postgres://app@127.0.0.1/app")
//	...
//	row, err := fdpoll.Await(ctx, pool.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id))
//	if err != nil { ... }
//	var name string
//	err = row.Scan(&name)
//
// Every call that talks to the server returns an *fdpoll.Future at once;
// fdpoll.Await suspends the calling task until it completes, or blocks a
// plain goroutine (a net/http handler), so the same code runs in both.
// Only constructors, Close and pure accessors return plain values.
//
// # Pipelining
//
// Each loop of the pool's fdpoll.Group has its own connections
// (Config.ConnsPerLoop, 2 by default). A query made in a task of that loop
// is encoded straight into the least loaded connection's output buffer
// without waiting for the replies of earlier queries; the loop flushes the
// buffer once per iteration, so one write carries the queries of every task
// that ran. Each query ends with its own Sync: a failing query does not
// affect the others. Replies are matched to futures in order. A query made
// outside the pool's loops is handed to a loop in a batch with others.
//
// The server sends each reply in a write of its own. So that the reader of
// a busy connection is not woken for every one of them, on Linux a TCP
// connection with many queries in flight raises its socket's receive
// low-water mark (SO_RCVLOWAT): the kernel wakes the reader once a batch of
// replies has arrived, or after a millisecond at most, and one read takes
// them all.
//
// A query's whole result is read into the Rows its future completes with,
// so a slow consumer never stalls the pipeline. (There is no streaming
// alternative for queries; COPY TO streams, see CopyTo.)
//
// Queries with arguments are prepared once per connection and then sent as
// Bind/Execute (ExecModeCache), with binary parameters and results where
// pgtype has a binary codec; ExecModeUnnamed works behind PgBouncer in
// transaction pooling.
//
// Connections are opened on first use. Pool connections are shared by many
// callers and stay in autocommit: session state set with SET affects every
// caller of the connection, and transactions go through Begin, which pins a
// connection of its own until Commit or Rollback. COPY (CopyFrom, CopyTo)
// and LISTEN (Listen) also use pinned connections.
//
// # Failures
//
// Server errors are *pgconn.PgError (SQLSTATE, detail, hint, position).
// When a request's context ends, its future fails with the context's error
// at once and the server is sent a CancelRequest for it once it is the
// statement executing; the connection stays usable. When a connection
// breaks, the requests pending on it fail with an error matching
// ErrConnLost and the loop reconnects, with exponential backoff after
// failed attempts (during which requests fail at once with the last
// connection error, rather than hang).
//
// # Types
//
// Arguments are encoded and results decoded by pgx's pgtype: anything pgx
// accepts (ints, floats, pgtype.Numeric, strings, []byte, bool, time.Time,
// [16]byte and pgtype.UUID, maps and structs as json/jsonb, slices as
// arrays, nil and pointers as NULL, driver.Valuer, sql.Scanner) works here.
// Each loop has its own pgtype.Map; Scan from other goroutines uses spares.
package pgasync
