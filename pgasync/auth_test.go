package pgasync_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/yieldio/yieldio/fdpoll"
	"github.com/yieldio/yieldio/pgasync"
)

// connInfo asks the server who we are and whether the connection uses TLS.
func connInfo(t *testing.T, p *pgasync.Pool) (user string, ssl bool) {
	t.Helper()
	ctx := testCtx(t)
	row := await(t, ctx, p.QueryRow(ctx, "SELECT current_user::text, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)"))
	if err := row.Scan(&user, &ssl); err != nil {
		t.Fatal(err)
	}
	return user, ssl
}

func TestAuthMethods(t *testing.T) {
	needCluster(t)
	for _, c := range []struct{ name, user, pass string }{
		{"md5", md5User, md5Pass},
		{"scram-sha-256", scramUser, scramPass},
		{"password", pwUser, pwPass},
	} {
		t.Run(c.name, func(t *testing.T) {
			leakCheck(t)
			p := newPoolDSN(t, 1, userDSN(c.user, c.pass))
			if user, ssl := connInfo(t, p); user != c.user || ssl {
				t.Fatalf("connected as %q, ssl %v", user, ssl)
			}
			// A wrong password is a connect error carrying the server's.
			bad := newPoolDSN(t, 1, userDSN(c.user, "wrong"))
			ctx := testCtx(t)
			_, err := fdpoll.Await(ctx, bad.Exec(ctx, "SELECT 1"))
			var ce *pgasync.ConnError
			var pe *pgconn.PgError
			if !errors.As(err, &ce) || ce.Op != "connect" || !errors.As(err, &pe) || pe.Code != "28P01" {
				t.Fatalf("wrong password: got %v", err)
			}
			if errors.Is(err, pgasync.ErrConnLost) {
				t.Fatal("a refused connection is not a lost one")
			}
		})
	}
}

func TestTLS(t *testing.T) {
	c := needCluster(t)
	leakCheck(t)
	for _, tc := range []struct {
		name   string
		params []string
	}{
		{"require", []string{"sslmode=require"}},
		{"verify-ca", []string{"sslmode=verify-ca", "sslrootcert=" + c.CAFile}},
		{"verify-full", []string{"sslmode=verify-full", "sslrootcert=" + c.CAFile}},
		{"prefer", []string{"sslmode=prefer"}},
		{"channel binding required", []string{"sslmode=require", "channel_binding=require"}},
		{"channel binding disabled", []string{"sslmode=require", "channel_binding=disable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// tlsonly may only log in over TLS, with SCRAM.
			p := newPoolDSN(t, 2, userDSN(tlsUser, tlsPass, tc.params...))
			if user, ssl := connInfo(t, p); user != tlsUser || !ssl {
				t.Fatalf("connected as %q, ssl %v", user, ssl)
			}
			// Pipelined queries over TLS, and results larger than a TLS
			// record.
			ctx := testCtx(t)
			fs := make([]*fdpoll.Future[*pgasync.Row], 300)
			for i := range fs {
				fs[i] = p.QueryRow(ctx, "SELECT repeat('x', $1::int)", 100*i)
			}
			for i, f := range fs {
				var s string
				if err := await(t, ctx, f).Scan(&s); err != nil || len(s) != 100*i {
					t.Fatalf("query %d over TLS: %d bytes, %v", i, len(s), err)
				}
			}
		})
	}
	t.Run("plain refused by pg_hba", func(t *testing.T) {
		p := newPoolDSN(t, 1, userDSN(tlsUser, tlsPass, "sslmode=disable"))
		ctx := testCtx(t)
		_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong root certificate", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.crt")
		writeSelfSigned(t, other)
		p := newPoolDSN(t, 1, userDSN(tlsUser, tlsPass, "sslmode=verify-full", "sslrootcert="+other))
		ctx := testCtx(t)
		_, err := fdpoll.Await(ctx, p.Exec(ctx, "SELECT 1"))
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) {
			t.Fatalf("got %v, want an unknown authority error", err)
		}
	})
}

func writeSelfSigned(t *testing.T, path string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Keyword/value DSNs, PG* environment variables and .pgpass, through
// pgconn.ParseConfig.
func TestDSNForms(t *testing.T) {
	c := needCluster(t)
	dir := t.TempDir()
	pgpass := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(pgpass, []byte("127.0.0.1:*:*:"+scramUser+":"+scramPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGPASSFILE", pgpass)
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", itoa(c.Port))
	t.Setenv("PGUSER", scramUser)
	t.Setenv("PGDATABASE", "postgres")
	t.Setenv("PGSSLMODE", "disable")
	p := newPoolDSN(t, 1, "")
	if user, _ := connInfo(t, p); user != scramUser {
		t.Fatalf("from the environment: connected as %q", user)
	}
	p = newPoolDSN(t, 1, "host=127.0.0.1 user="+md5User+" password='"+md5Pass+"' application_name=kv")
	if user, _ := connInfo(t, p); user != md5User {
		t.Fatalf("keyword/value: connected as %q", user)
	}
	// Several hosts: the first is down, the second answers.
	p = newPoolDSN(t, 1, "postgres://"+md5User+":"+urlEscape(md5Pass)+"@127.0.0.1:1,127.0.0.1:"+itoa(c.Port)+"/postgres?sslmode=disable")
	if user, _ := connInfo(t, p); user != md5User {
		t.Fatalf("multi-host: connected as %q", user)
	}
	if _, err := pgasync.Open("postgres://x@h/db?pgasync_conns_per_loop=zero"); err == nil {
		t.Fatal("bad pgasync_conns_per_loop accepted")
	}
	if _, err := pgasync.Open("postgres://x@h/db?default_query_exec_mode=bogus"); err == nil {
		t.Fatal("bad default_query_exec_mode accepted")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
