package pgasync_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// Regression tests for bugs found in review: each failed before its fix.

// readFrontend reads one typed message from the client.
func readFrontend(c net.Conn) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > 1<<20 {
		return 0, nil, errors.New("bad length")
	}
	body := make([]byte, n-4)
	_, err := io.ReadFull(c, body)
	return hdr[0], body, err
}

func int32Bytes(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// A server that sends DataRows that do not match the RowDescription (none
// at all, or a second one with other columns) breaks the protocol: the
// client must report it, not panic in Scan indexing the columns.
func TestDataRowsWithoutMatchingDescription(t *testing.T) {
	oneCol := msg('D', 0, 1, 0, 0, 0, 1, '7')
	twoCols := msg('D', 0, 2, 0, 0, 0, 1, '7', 0, 0, 0, 1, '8')
	field := func(name string) []byte {
		b := append([]byte(name), 0)
		b = append(b, 0, 0, 0, 0, 0, 0) // table OID, attribute number
		b = append(b, 0, 0, 0, 23)      // int4
		b = append(b, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0)
		return b
	}
	desc1 := msg('T', append([]byte{0, 1}, field("a")...)...)
	desc2 := msg('T', append(append([]byte{0, 2}, field("a")...), field("b")...)...)
	for name, tc := range map[string]struct {
		replies []byte
		dest    int
	}{
		"data row after NoData":           {bytes.Join([][]byte{msg('1'), msg('2'), msg('n'), oneCol}, nil), 1},
		"second description, more cols":   {bytes.Join([][]byte{msg('1'), msg('2'), desc1, oneCol, desc2, twoCols}, nil), 1},
		"second description, fewer cols":  {bytes.Join([][]byte{msg('1'), msg('2'), desc2, twoCols, desc1, oneCol}, nil), 2},
		"data row before any description": {bytes.Join([][]byte{msg('1'), msg('2'), oneCol}, nil), 1},
	} {
		t.Run(name, func(t *testing.T) {
			leakCheck(t)
			s := startFake(t, func(s *fakeServer) {
				s.onQuery = func(c net.Conn, typ byte, body []byte) {
					if typ == 'S' {
						out := append([]byte(nil), tc.replies...)
						out = append(out, msg('C', []byte("SELECT 1\x00")...)...)
						c.Write(append(out, msg('Z', 'I')...))
					}
				}
			})
			p := newPoolDSN(t, 1, s.dsn("default_query_exec_mode=exec"))
			ctx := testCtx(t)
			rows, err := fdpoll.Await(ctx, p.Query(ctx, "SELECT $1::int", 1))
			if err == nil {
				// Before the fix the rows came back and Scan panicked.
				dest := make([]any, tc.dest)
				for i := range dest {
					dest[i] = new(int)
				}
				for rows.Next() {
					rows.Scan(dest...)
					rows.Values()
				}
				t.Fatal("a result whose rows do not match its description was accepted")
			}
			var pe *pgasync.ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

// A nil context is taken as context.Background, as BeginTx and the COPY
// calls already did; Query, QueryRow and Exec panicked.
func TestNilContext(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	var none context.Context
	if _, err := fdpoll.Await(ctx, p.Exec(none, "SELECT 1")); err != nil {
		t.Fatal(err)
	}
	row := await(t, ctx, p.QueryRow(none, "SELECT 2"))
	var n int
	if err := row.Scan(&n); err != nil || n != 2 {
		t.Fatalf("QueryRow: %d %v", n, err)
	}
	rows := await(t, ctx, p.Query(none, "SELECT 3"))
	if !rows.Next() {
		t.Fatal("Query: no row")
	}
}

// The protocol's parameter count is a 16-bit number the server treats as
// unsigned: a statement with more than 32767 parameters is valid (up to
// 65535), and more than 65535 arguments cannot be sent at all.
func TestManyParameters(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	const n = 40000
	var sql strings.Builder
	sql.WriteString("SELECT array_length(ARRAY[")
	args := make([]any, n)
	for i := range n {
		if i > 0 {
			sql.WriteByte(',')
		}
		sql.WriteString("$" + strconv.Itoa(i+1) + "::int")
		args[i] = i
	}
	sql.WriteString("], 1)")
	row, err := fdpoll.Await(ctx, p.QueryRow(ctx, sql.String(), args...))
	if err != nil {
		t.Fatalf("%d parameters: %v", n, err)
	}
	var got int
	if err := row.Scan(&got); err != nil || got != n {
		t.Fatalf("%d parameters: got %d, %v", n, got, err)
	}

	u := newPoolDSN(t, 1, withParams(baseDSN, "default_query_exec_mode=exec"))
	_, err = fdpoll.Await(ctx, u.Exec(ctx, "SELECT 1", make([]any, 70000)...))
	var ae *pgasync.ArgError
	if !errors.As(err, &ae) {
		t.Fatalf("70000 arguments: got %v, want an *ArgError", err)
	}
	if _, err := fdpoll.Await(ctx, u.Exec(ctx, "SELECT $1::int", 1)); err != nil {
		t.Fatalf("the connection after: %v", err)
	}
}

// A caller whose context ends while a pinned connection is being opened for
// it must not put the whole loop into reconnection backoff: the server is
// fine, only that caller gave up.
func TestCallerCancelDuringConnectIsNoServerFailure(t *testing.T) {
	leakCheck(t)
	s := startFake(t, func(s *fakeServer) {
		s.stallFirst.Store(1)
		s.onQuery = func(c net.Conn, typ byte, body []byte) {
			if typ == 'Q' {
				c.Write(append(msg('C', []byte("SELECT 1\x00")...), msg('Z', 'I')...))
			}
		}
	})
	p := newPoolDSN(t, 1, s.dsn(), func(cfg *pgasync.Config) {
		cfg.MinReconnectDelay, cfg.MaxReconnectDelay = time.Minute, time.Minute
	})
	ctx := testCtx(t)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Awaited with the long context: the future completes once Begin's
	// task has given up.
	if _, err := fdpoll.Await(ctx, p.Begin(short)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Begin against a stalled server: %v", err)
	}
	if _, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1")); err != nil {
		t.Fatalf("a query after another caller gave up connecting: %v", err)
	}
}

// Commit with a context that has already ended must not commit: it fails
// with the context's error, and so the transaction must be rolled back
// (pgx sends nothing and closes the connection).
func TestCommitWithEndedContext(t *testing.T) {
	leakCheck(t)
	p, app := newPool(t, 1)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS commit_ctx; CREATE TABLE commit_ctx (id int)"))
	tx := await(t, ctx, p.Begin(ctx))
	await(t, ctx, tx.Exec(ctx, "INSERT INTO commit_ctx VALUES (1)"))
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fdpoll.Await(ctx, tx.Commit(ended)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit: got %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for backends(t, app) > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(t, p, "commit_ctx"); n != 0 {
		t.Fatalf("Commit reported %v but committed: %d rows", context.Canceled, n)
	}
	// Begin with an ended context sends nothing and keeps the connection.
	if _, err := fdpoll.Await(ctx, p.Begin(ended)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin: got %v", err)
	}
	await(t, ctx, p.Exec(ctx, "DROP TABLE commit_ctx"))
}

// channel_binding=require means the server must prove, with
// SCRAM-SHA-256-PLUS, that it holds the TLS certificate: libpq refuses
// trust, password and md5 authentication then (and does not send the
// password).
func TestChannelBindingRequired(t *testing.T) {
	c := needCluster(t)
	leakCheck(t)
	for name, dsn := range map[string]string{
		"trust":    c.DSN("", "sslmode=require", "channel_binding=require"),
		"password": userDSN(pwUser, pwPass, "sslmode=require", "channel_binding=require"),
		"md5":      userDSN(md5User, md5Pass, "sslmode=require", "channel_binding=require"),
	} {
		t.Run(name, func(t *testing.T) {
			p := newPoolDSN(t, 1, dsn)
			ctx := testCtx(t)
			_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
			var ce *pgasync.ConnError
			if !errors.As(err, &ce) || ce.Op != "connect" || !strings.Contains(err.Error(), "channel") {
				t.Fatalf("got %v, want a connect error about channel binding", err)
			}
		})
	}
}

// A server that ends a SCRAM exchange with AuthenticationOk, skipping the
// AuthenticationSASLFinal that proves it knows the password, is refused.
func TestSCRAMServerSignatureRequired(t *testing.T) {
	leakCheck(t)
	s := startFake(t, func(s *fakeServer) {
		s.auth = func(c net.Conn, _ []byte) bool {
			c.Write(msg('R', append(int32Bytes(10), "SCRAM-SHA-256\x00\x00"...)...))
			typ, body, err := readFrontend(c)
			if err != nil || typ != 'p' {
				return false
			}
			i := bytes.Index(body, []byte("r="))
			if i < 0 {
				return false
			}
			nonce := string(body[i+2:])
			salt := base64.StdEncoding.EncodeToString([]byte("salt"))
			c.Write(msg('R', append(int32Bytes(11), "r="+nonce+"srv,s="+salt+",i=4096"...)...))
			if typ, _, err := readFrontend(c); err != nil || typ != 'p' {
				return false
			}
			c.Write(msg('R', int32Bytes(0)...)) // no AuthenticationSASLFinal
			return true
		}
		s.onQuery = func(c net.Conn, typ byte, body []byte) {
			if typ == 'Q' {
				c.Write(append(msg('C', []byte("SELECT 1\x00")...), msg('Z', 'I')...))
			}
		}
	})
	p := newPoolDSN(t, 1, s.dsn("password=secret"))
	ctx := testCtx(t)
	_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
	var ce *pgasync.ConnError
	if !errors.As(err, &ce) || ce.Op != "connect" || !strings.Contains(err.Error(), "SCRAM") {
		t.Fatalf("got %v, want a SCRAM connect error", err)
	}
}

// A declared message length is not allocated up front: a server that
// announces a huge DataRow and sends a few bytes costs about what it sent.
// A message type that is always short (CommandComplete, ReadyForQuery...)
// with a long declared length is a protocol error at once, as in libpq,
// rather than a wait for data that will never come.
func TestDeclaredLengthsNotTrusted(t *testing.T) {
	t.Run("huge data row", func(t *testing.T) {
		leakCheck(t)
		s := startFake(t, func(s *fakeServer) {
			s.onQuery = func(c net.Conn, typ byte, body []byte) {
				if typ == 'Q' {
					c.Write(append(msg('T', 0, 0), 'D', 0x30, 0, 0, 0, 0, 0))
					c.Close()
				}
			}
		})
		p := newPoolDSN(t, 1, s.dsn())
		ctx := testCtx(t)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, pgasync.ErrConnLost) {
			t.Fatalf("got %v", err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
			t.Fatalf("a server that sent a few bytes made the client allocate %d MB", d>>20)
		}
	})
	t.Run("long short message", func(t *testing.T) {
		leakCheck(t)
		s := startFake(t, func(s *fakeServer) {
			s.onQuery = func(c net.Conn, typ byte, body []byte) {
				if typ == 'Q' {
					c.Write([]byte{'C', 0, 0x10, 0, 0, 'S'}) // 1 MiB CommandComplete, never sent
				}
			}
		})
		p := newPoolDSN(t, 1, s.dsn())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
		var pe *pgasync.ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("got %v, want a protocol error", err)
		}
	})
}

// A CopyFrom statement that runs COPY FROM STDIN twice: the input goes to
// the first; the second must be failed, not waited on forever.
func TestCopyFromSecondCopyInStatement(t *testing.T) {
	leakCheck(t)
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, "DROP TABLE IF EXISTS copy_twice; CREATE TABLE copy_twice (id int)"))
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := fdpoll.Await(short, p.CopyFrom(context.Background(), "COPY copy_twice FROM STDIN; COPY copy_twice FROM STDIN", strings.NewReader("1\n2\n")))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the statement's own error", err)
	}
	if n := count(t, p, "copy_twice"); n != 0 {
		t.Fatalf("%d rows copied by a failed statement", n)
	}
	// The pinned connection is still usable.
	if _, err := fdpoll.Await(ctx, p.CopyFrom(ctx, "COPY copy_twice FROM STDIN", strings.NewReader("3\n"))); err != nil {
		t.Fatalf("the next COPY: %v", err)
	}
	await(t, ctx, p.Exec(ctx, "DROP TABLE copy_twice"))
}

// A statement whose preparation breaks the connection (here the server
// garbles its ParameterDescription every time) fails the request: before,
// the request waiting for it was sent again on a new connection, which broke
// the same way, for ever.
func TestStatementBreakingEveryConnection(t *testing.T) {
	leakCheck(t)
	var conns atomic.Int32
	s := startFake(t, func(s *fakeServer) {
		s.onQuery = func(c net.Conn, typ byte, body []byte) {
			if typ == 'P' {
				conns.Add(1)
			}
			if typ == 'S' {
				c.Write(append(msg('1'), msg('t', 0, 2, 0, 0, 0, 23)...)) // two parameters, one OID
			}
		}
	})
	p := newPoolDSN(t, 1, s.dsn())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT $1::int", 1))
	var pe *pgasync.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v after %d attempts, want a protocol error", err, conns.Load())
	}
	if n := conns.Load(); n > 2 {
		t.Fatalf("prepared on %d connections", n)
	}
}

// A feature_not_supported error (SQLSTATE 0A000) is retried only when it is
// the stale cached plan the server reports before executing anything; any
// other may come after the statement had effects, which a retry repeats.
func TestOnlyStalePlanErrorsRetried(t *testing.T) {
	p, _ := newPool(t, 1)
	ctx := testCtx(t)
	await(t, ctx, p.Exec(ctx, `
		DROP SEQUENCE IF EXISTS retry_seq; CREATE SEQUENCE retry_seq;
		CREATE OR REPLACE FUNCTION retry_fn(int) RETURNS int LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM nextval('retry_seq');
			RAISE EXCEPTION 'not supported' USING ERRCODE = '0A000';
		END $$`))
	_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT retry_fn($1)", 1))
	if sqlStateOf(err) != "0A000" {
		t.Fatalf("got %v", err)
	}
	row := await(t, ctx, p.QueryRow(ctx, "SELECT last_value FROM retry_seq"))
	var calls int
	if err := row.Scan(&calls); err != nil || calls != 1 {
		t.Fatalf("the function ran %d times, %v", calls, err)
	}
	await(t, ctx, p.Exec(ctx, "DROP FUNCTION retry_fn(int); DROP SEQUENCE retry_seq"))
}

func sqlStateOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// A notification reaching a pinned connection other than the loop's LISTEN
// connection (one that ran LISTEN in a transaction) is not handed to the
// listeners: they get each notification once.
func TestNotificationsOnlyFromListenConnection(t *testing.T) {
	leakCheck(t)
	p, _ := newPool(t, 1)
	g := p.Config().Group
	inTask(t, g.Loop(0), func(ctx context.Context) error {
		// Two pinned connections, the first left listening on "dup".
		tx1, err := fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		tx2, err := fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx1.Exec(ctx, "LISTEN dup")); err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx1.Commit(ctx)); err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx2.Commit(ctx)); err != nil {
			return err
		}
		// The listener takes the second (the last released).
		l, err := fdpoll.Await(ctx, p.Listen(ctx, "dup"))
		if err != nil {
			return err
		}
		defer l.Close()
		if _, err := fdpoll.Await(ctx, p.Exec(ctx, "NOTIFY dup, 'once'")); err != nil {
			return err
		}
		n, err := fdpoll.Await(ctx, l.Next(ctx))
		if err != nil || n.Payload != "once" {
			return fmt.Errorf("Next: %v %v", n, err)
		}
		// A round trip on the first connection: its copy of the
		// notification has arrived by the end of it.
		tx, err := fdpoll.Await(ctx, p.Begin(ctx))
		if err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx.Exec(ctx, "SELECT 1")); err != nil {
			return err
		}
		if _, err := fdpoll.Await(ctx, tx.Commit(ctx)); err != nil {
			return err
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if n, err := fdpoll.Await(short, l.Next(short)); err == nil {
			return fmt.Errorf("notification delivered twice: %+v", n)
		}
		return nil
	})
}
