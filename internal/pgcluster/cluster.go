// Package pgcluster starts throwaway PostgreSQL clusters for tests, demos and
// benchmarks: initdb into a temporary directory, then the postgres server on
// a free loopback port and a private Unix socket, as the postgres user when
// the caller is root (initdb and postgres refuse to run as root).
//
// The server is the caller's child process; on Linux it is told to shut
// down (SIGQUIT, an immediate shutdown) if its parent dies, so a test binary
// killed by its timeout does not leave a server behind. Stop removes the
// directory. The package uses pgconn only to see when the server is ready
// and to run set-up SQL (Exec).
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Options configure a cluster. The zero value is a plain cluster that
// trusts every local connection.
type Options struct {
	// TLS generates a self-signed certificate (for localhost, 127.0.0.1
	// and ::1) and turns ssl on. Cluster.CAFile is the certificate to
	// verify it with.
	TLS bool

	// HBA lines are placed before the default pg_hba.conf rules (which
	// trust everything on the socket and on loopback), so they win for
	// the users they name.
	HBA []string

	// Settings are extra server settings (postgresql.conf names).
	Settings map[string]string
}

// A Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Root      string // temporary directory holding everything below
	DataDir   string
	SocketDir string
	Port      int
	CAFile    string // the server certificate, when Options.TLS

	opts     Options
	postgres string
	cred     *syscall.Credential
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// SuperUser is the name of the cluster's superuser (initdb -U).
const SuperUser = "postgres"

// Start initialises and starts a cluster. The caller must Stop it.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	initdb, err := FindBin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := FindBin("postgres")
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c = &Cluster{
		Root: root, DataDir: filepath.Join(root, "data"), SocketDir: root,
		opts: opts, postgres: postgres, cred: cred, logPath: filepath.Join(root, "postgres.log"),
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.chown(root); err != nil {
		return nil, err
	}
	initArgs := []string{"-D", c.DataDir, "-U", SuperUser, "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"}
	if out, err := c.run(ctx, initdb, initArgs...); err != nil {
		return nil, fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	if err := c.writeHBA(); err != nil {
		return nil, err
	}
	if opts.TLS {
		if err := c.writeCert(); err != nil {
			return nil, err
		}
	}
	// A port picked by binding :0 may be taken again before the server
	// binds it; try a few.
	for attempt := 0; ; attempt++ {
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
		err = c.start(ctx)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// credential returns the identity to run the server as: the postgres user
// when we are root, nil (ourselves) otherwise.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root needs the postgres user (created by the postgresql package): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgcluster: postgres user has non-numeric ids %q:%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = procAttr(c.cred)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = c.Root
	return cmd
}

// run runs a program to completion and returns its combined output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := c.command(ctx, name, args...)
	return cmd.CombinedOutput()
}

func (c *Cluster) writeFile(name string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(name, data, mode); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.chown(name)
}

func (c *Cluster) writeHBA() error {
	var b strings.Builder
	b.WriteString("# written by pgcluster\n")
	for _, line := range c.opts.HBA {
		b.WriteString(line + "\n")
	}
	b.WriteString("local all all trust\n")
	b.WriteString("host all all 127.0.0.1/32 trust\n")
	b.WriteString("host all all ::1/128 trust\n")
	return c.writeFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(b.String()), 0o600)
}

func (c *Cluster) writeCert() error {
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return err
	}
	if err := c.writeFile(filepath.Join(c.DataDir, "server.crt"), certPEM, 0o600); err != nil {
		return err
	}
	if err := c.writeFile(filepath.Join(c.DataDir, "server.key"), keyPEM, 0o600); err != nil {
		return err
	}
	c.CAFile = filepath.Join(c.Root, "ca.crt")
	return c.writeFile(c.CAFile, certPEM, 0o644)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs the server and waits until it accepts connections.
func (c *Cluster) start(ctx context.Context) error {
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": c.SocketDir,
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"max_connections":         "200",
		"log_min_messages":        "warning",
		"lc_messages":             "C",
	}
	if c.opts.TLS {
		settings["ssl"] = "on"
		settings["ssl_cert_file"] = "server.crt"
		settings["ssl_key_file"] = "server.key"
	}
	for k, v := range c.opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", c.DataDir}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	// The server outlives ctx (which only bounds the start), so it is
	// not a CommandContext.
	cmd := c.command(context.Background(), c.postgres, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgcluster: starting postgres: %w", err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		select {
		case <-exited:
			return fmt.Errorf("pgcluster: postgres exited during start-up: %s", c.logTail())
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(pctx, c.AdminDSN())
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stopServer()
			return fmt.Errorf("pgcluster: postgres not ready: %v: %s", err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail returns the end of the server log, for error messages.
func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// AdminDSN is a keyword/value DSN for the superuser over the Unix socket.
func (c *Cluster) AdminDSN() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", c.SocketDir, c.Port, SuperUser)
}

// DSN is a URL for user over TCP to 127.0.0.1, with extra query
// parameters (e.g. "sslmode=require") appended. User "" is the superuser;
// sslmode defaults to disable unless params set it.
func (c *Cluster) DSN(user string, params ...string) string {
	if user == "" {
		user = SuperUser
	}
	q := strings.Join(params, "&")
	if !strings.Contains(q, "sslmode=") {
		q = strings.TrimPrefix(q+"&sslmode=disable", "&")
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?%s", user, c.Port, q)
}

// Exec runs sql (one or more statements, no parameters) as the superuser
// over the Unix socket, on a connection of its own.
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	conn, err := pgconn.Connect(ctx, c.AdminDSN())
	if err != nil {
		return fmt.Errorf("pgcluster: connecting: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgcluster: %q: %w", sql, err)
	}
	return nil
}

// Restart stops the server (a fast shutdown: connections are terminated)
// and starts it again on the same port and data.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.stopServer(); err != nil {
		return err
	}
	return c.start(ctx)
}

// StopServer stops the server but keeps the cluster's files, so Restart
// can start it again.
func (c *Cluster) StopServer() error { return c.stopServer() }

// StartServer starts a server stopped by StopServer.
func (c *Cluster) StartServer(ctx context.Context) error { return c.start(ctx) }

func (c *Cluster) stopServer() error {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-exited:
		return nil
	case <-time.After(15 * time.Second):
	}
	cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown
	select {
	case <-exited:
		return nil
	case <-time.After(5 * time.Second):
	}
	cmd.Process.Kill()
	<-exited
	return errors.New("pgcluster: postgres did not shut down; killed")
}

// Stop stops the server and removes every file of the cluster. It is safe
// to call more than once.
func (c *Cluster) Stop() error {
	err := c.stopServer()
	if c.Root != "" {
		if rerr := os.RemoveAll(c.Root); rerr != nil && err == nil {
			err = fmt.Errorf("pgcluster: %w", rerr)
		}
	}
	return err
}
