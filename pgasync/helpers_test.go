package pgasync_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/internal/pgcluster"
	"github.com/yieldio/yieldio/pgasync"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 30 * time.Second

// The server the tests talk to: a throwaway cluster started by TestMain,
// or the one PGASYNC_TEST_DSN names.
var (
	cluster  *pgcluster.Cluster // nil with PGASYNC_TEST_DSN
	baseDSN  string
	adminDSN string
)

// Users with a password, each allowed in by one method (pg_hba.conf).
const (
	md5User, md5Pass     = "md5user", "md5 secret"
	scramUser, scramPass = "scramuser", "scräm secret" // non-ASCII: SASLprep
	pwUser, pwPass       = "pwuser", "plain secret"
	tlsUser, tlsPass     = "tlsonly", "tls secret"
)

var clusterOptions = pgcluster.Options{
	TLS: true,
	HBA: []string{
		"host all " + md5User + " 127.0.0.1/32 md5",
		"host all " + scramUser + " 127.0.0.1/32 scram-sha-256",
		"host all " + pwUser + " 127.0.0.1/32 password",
		"hostssl all " + tlsUser + " 127.0.0.1/32 scram-sha-256",
		"host all " + tlsUser + " 127.0.0.1/32 reject",
	},
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if dsn := os.Getenv("PGASYNC_TEST_DSN"); dsn != "" {
		baseDSN, adminDSN = dsn, dsn
		fmt.Fprintln(os.Stderr, "pgasync tests: using PGASYNC_TEST_DSN; tests that restart the server or need its TLS and users will skip, saying so")
	} else {
		c, err := pgcluster.Start(ctx, clusterOptions)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgasync tests: cannot start a PostgreSQL cluster:", err)
			return 1
		}
		defer c.Stop()
		cluster = c
		baseDSN, adminDSN = c.DSN(""), c.AdminDSN()
		setup := fmt.Sprintf(`
			SET password_encryption = 'md5';
			CREATE ROLE %s LOGIN PASSWORD '%s';
			SET password_encryption = 'scram-sha-256';
			CREATE ROLE %s LOGIN PASSWORD '%s';
			CREATE ROLE %s LOGIN PASSWORD '%s';
			CREATE ROLE %s LOGIN PASSWORD '%s';`,
			md5User, md5Pass, scramUser, scramPass, pwUser, pwPass, tlsUser, tlsPass)
		if err := c.Exec(ctx, setup); err != nil {
			fmt.Fprintln(os.Stderr, "pgasync tests:", err)
			return 1
		}
	}
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgasync tests:", err)
		return 1
	}
	defer g.Close()
	cfg, err := pgasync.ParseConfig(adminDSN)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgasync tests:", err)
		return 1
	}
	cfg.Group, cfg.ConnsPerLoop = g, 1
	if adminPool, err = pgasync.OpenConfig(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pgasync tests:", err)
		return 1
	}
	defer adminPool.Close()
	// The examples read the server's DSN from the environment, as
	// programs do.
	os.Setenv("DATABASE_URL", baseDSN)
	// Connect now, so that leak checks do not see its connection appear.
	if _, err := fdpoll.Await(ctx, adminPool.Exec(ctx, "SELECT 1")); err != nil {
		fmt.Fprintln(os.Stderr, "pgasync tests: admin connection:", err)
		return 1
	}
	return m.Run()
}

// adminPool is a superuser pool for the tests' own inspection of the
// server (pg_stat_activity and such).
var adminPool *pgasync.Pool

// needCluster skips, loudly, a test that needs the cluster this package
// starts (its users, TLS, or the power to restart it) when the tests run
// against PGASYNC_TEST_DSN instead. In CI the cluster is always started.
func needCluster(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	if cluster == nil {
		t.Skip("SKIPPED: needs the cluster the tests start themselves; unset PGASYNC_TEST_DSN to run it")
	}
	return cluster
}

var appSeq atomic.Int64

// newPool opens a pool on a private group of loops, with a unique
// application_name (to find its connections in pg_stat_activity), closed
// when the test ends. extra is appended to the DSN's query string.
func newPool(t testing.TB, loops int, extra ...string) (*pgasync.Pool, string) {
	t.Helper()
	app := fmt.Sprintf("pgasync_test_%d", appSeq.Add(1))
	return newPoolDSN(t, loops, withParams(baseDSN, append([]string{"application_name=" + app}, extra...)...)), app
}

// newPoolDSN opens a pool for dsn on a private group of loops.
func newPoolDSN(t testing.TB, loops int, dsn string, configure ...func(*pgasync.Config)) *pgasync.Pool {
	t.Helper()
	g, err := fdpoll.NewGroup(loops)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgasync.ParseConfig(dsn)
	if err != nil {
		g.Close()
		t.Fatal(err)
	}
	cfg.Group = g
	for _, fn := range configure {
		fn(cfg)
	}
	p, err := pgasync.OpenConfig(cfg)
	if err != nil {
		g.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Pool.Close: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("Group.Close: %v", err)
		}
	})
	return p
}

// withParams appends query parameters to a URL DSN, or key=value pairs to
// a keyword/value one.
func withParams(dsn string, params ...string) string {
	if len(params) == 0 {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + strings.Join(params, "&")
	}
	return dsn + " " + strings.Join(params, " ")
}

// userDSN is the cluster's DSN for user with password over TCP.
func userDSN(user, password string, params ...string) string {
	return cluster.DSN(user+":"+urlEscape(password), params...)
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// testCtx returns a context bounded by testTimeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// await waits for f, failing the test on error.
func await[T any](t testing.TB, ctx context.Context, f *fdpoll.Future[T]) T {
	t.Helper()
	v, err := fdpoll.Await(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// inTask runs fn as a task on loop l of g and waits for it.
func inTask(t testing.TB, l *fdpoll.Loop, fn func(ctx context.Context) error) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := fdpoll.Await(ctx, l.Spawn(ctx, fn)); err != nil {
		t.Fatal(err)
	}
}

// admin runs sql as the superuser, on a connection of its own.
func admin(t testing.TB, sql string) {
	t.Helper()
	if _, err := fdpoll.Await(testCtx(t), adminPool.Exec(testCtx(t), sql)); err != nil {
		t.Fatalf("admin %q: %v", sql, err)
	}
}

// queryInt runs sql (a count, say) on p and returns its one integer.
func queryInt(t testing.TB, p *pgasync.Pool, sql string, args ...any) int {
	t.Helper()
	ctx := testCtx(t)
	row := await(t, ctx, p.QueryRow(ctx, sql, args...))
	var n int
	if err := row.Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// backends returns how many server connections carry application name app.
func backends(t testing.TB, app string) int {
	t.Helper()
	return queryInt(t, adminPool, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app)
}

// inTransaction returns how many backends of app are idle in a transaction.
func inTransaction(t testing.TB, app string) int {
	t.Helper()
	return queryInt(t, adminPool,
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'", app)
}

// leakCheck records goroutines and fds now and checks, when the test ends
// (after its cleanups), that they are back to that.
func leakCheck(t *testing.T) {
	t.Helper()
	fdpoll.Default()
	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), countFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, fd := runtime.NumGoroutine(), countFDs(t)
			if g <= g0 && fd <= fd0 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, g0, fd, fd0, buf)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting fds: %v", err)
	}
	return len(ents)
}
