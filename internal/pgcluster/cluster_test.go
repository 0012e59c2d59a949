package pgcluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestStartExecRestartStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.CAFile); err != nil {
		t.Fatalf("CA file: %v", err)
	}
	// TCP with TLS, verified against the generated certificate.
	conn, err := pgconn.Connect(ctx, c.DSN("", "sslmode=verify-full", "sslrootcert="+c.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "SELECT x FROM t"); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	root := c.Root
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("cluster directory left behind: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
