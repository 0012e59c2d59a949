package pgasync

import (
	"database/sql"
	"errors"
	"fmt"
)

var (
	// ErrNoRows is returned by Row.Scan when the query returned no row.
	// errors.Is(ErrNoRows, sql.ErrNoRows) holds.
	ErrNoRows = fmt.Errorf("pgasync: no rows in result set: %w", sql.ErrNoRows)

	// ErrPoolClosed is the error of every call made on, or pending in, a
	// closed Pool.
	ErrPoolClosed = errors.New("pgasync: pool closed")

	// ErrConnLost is matched (errors.Is) by the error of every request that
	// was pending on a connection when it broke: the server closed it
	// (restart, pg_terminate_backend), the network failed, or the server
	// broke the protocol. Whether such a request ran on the server is
	// unknown. The pool reconnects by itself; the error is a *ConnError.
	ErrConnLost = errors.New("pgasync: connection lost")

	// ErrTxDone is returned by calls on a transaction that has been
	// committed, rolled back, or abandoned.
	ErrTxDone = errors.New("pgasync: transaction already committed or rolled back")

	// ErrTxRolledBack is the error of Commit when the server rolled the
	// transaction back instead (a statement in it had failed).
	ErrTxRolledBack = errors.New("pgasync: commit rolled back: the transaction had failed")

	// ErrTxStatement is returned for a statement run with Pool.Query or
	// Pool.Exec that opens a transaction (BEGIN, START TRANSACTION): pool
	// connections are shared by many callers and must stay in autocommit.
	// Use Pool.Begin.
	ErrTxStatement = errors.New("pgasync: transaction statement on a shared connection: use Pool.Begin")

	// ErrCopyStatement is returned for a COPY ... FROM STDIN or TO STDOUT
	// statement run with Query or Exec: use CopyFrom and CopyTo.
	ErrCopyStatement = errors.New("pgasync: COPY FROM STDIN / TO STDOUT needs CopyFrom / CopyTo")

	// ErrListenerClosed is returned by Next on a closed Listener.
	ErrListenerClosed = errors.New("pgasync: listener closed")
)

// A ConnError reports a failed connection: Op is "connect" when it could
// not be established (then Err joins the error of each host tried, among
// them a *pgconn.PgError when the server refused, e.g. SQLSTATE 28P01 for a
// wrong password), or "read", "write" or "protocol" when an established
// connection broke; then errors.Is(err, ErrConnLost) holds.
type ConnError struct {
	Op   string
	Addr string // the server, "host:port" or the socket path
	Err  error
}

// Error describes the failure and the server it concerns.
func (e *ConnError) Error() string {
	if e.Op == "connect" {
		return fmt.Sprintf("pgasync: connecting to %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("pgasync: connection to %s lost (%s): %v", e.Addr, e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *ConnError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConnLost and the connection broke after
// it was established.
func (e *ConnError) Is(target error) bool { return target == ErrConnLost && e.Op != "connect" }

// A ProtocolError reports a message from the server that breaks the
// PostgreSQL protocol; the connection it arrived on is closed.
type ProtocolError struct {
	Msg string
}

// Error describes the violation.
func (e *ProtocolError) Error() string { return "pgasync: protocol error: " + e.Msg }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// A ScanError reports a column that could not be scanned into its
// destination.
type ScanError struct {
	Column int    // index of the column
	Name   string // its name
	Err    error
}

// Error names the column and the cause.
func (e *ScanError) Error() string {
	return fmt.Sprintf("pgasync: scanning column %d (%q): %v", e.Column, e.Name, e.Err)
}

// Unwrap returns the underlying error.
func (e *ScanError) Unwrap() error { return e.Err }

// An ArgError reports a query argument that could not be encoded; nothing
// was sent to the server.
type ArgError struct {
	Index int // 0-based; $1 is index 0
	Err   error
}

// Error names the parameter ($1 for index 0) and the cause.
func (e *ArgError) Error() string {
	return fmt.Sprintf("pgasync: encoding argument $%d: %v", e.Index+1, e.Err)
}

// Unwrap returns the underlying error.
func (e *ArgError) Unwrap() error { return e.Err }
