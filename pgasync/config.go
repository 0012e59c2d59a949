package pgasync

import (
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/yieldio/yieldio/fdpoll"
)

// ExecMode says how queries with arguments are sent.
type ExecMode int

const (
	// ExecModeCache prepares each distinct SQL text once per connection
	// (Parse and Describe, one extra round trip the first time) and from
	// then on sends only Bind, Execute and Sync, with parameters and
	// results in binary where the type allows. The default and the fastest.
	ExecModeCache ExecMode = iota

	// ExecModeUnnamed sends every query as Parse, Bind, Describe, Execute
	// and Sync on the unnamed statement, in one round trip, with
	// parameters and results in text format. Nothing outlives the query on
	// the server, so it works behind PgBouncer in transaction pooling mode
	// (like pgx's QueryExecModeExec). The server parses and plans every
	// query, so it is slower.
	ExecModeUnnamed
)

// String returns the mode's name as the DSN key default_query_exec_mode
// spells it.
func (m ExecMode) String() string {
	switch m {
	case ExecModeCache:
		return "cache_statement"
	case ExecModeUnnamed:
		return "exec"
	}
	return "ExecMode(" + strconv.Itoa(int(m)) + ")"
}

// Defaults of Config.
const (
	DefaultConnsPerLoop           = 2
	DefaultMaxPinnedConnsPerLoop  = 8
	DefaultStatementCacheCapacity = 512
	DefaultConnectTimeout         = 30 * time.Second
	DefaultMinReconnectDelay      = 50 * time.Millisecond
	DefaultMaxReconnectDelay      = 5 * time.Second
)

// Config configures a Pool. Make one with ParseConfig, adjust it, and pass
// it to OpenConfig.
type Config struct {
	// Conn says where and how to connect: hosts (with fallbacks), user,
	// password, database, TLS, run-time parameters. It comes from
	// pgconn.ParseConfig, which reads URL and keyword/value DSNs, the PG*
	// environment variables, .pgpass and service files. Its DialFunc,
	// LookupFunc, AfterConnect, ValidateConnect and BuildFrontend hooks are
	// not used: pgasync does its own I/O.
	Conn *pgconn.Config

	// Group runs the pool's connections: each loop gets its own. Nil
	// means fdpoll.Default().
	Group *fdpoll.Group

	// ConnsPerLoop is how many connections each loop pipelines queries
	// onto (DSN key pgasync_conns_per_loop). Default 2.
	ConnsPerLoop int

	// MaxPinnedConnsPerLoop bounds the connections each loop opens for
	// transactions, COPY and LISTEN, which hold a connection to themselves
	// (DSN key pgasync_max_pinned_conns_per_loop). Callers beyond it wait.
	// Default 8.
	MaxPinnedConnsPerLoop int

	// ExecMode is how queries with arguments are sent (DSN key
	// default_query_exec_mode: cache_statement or exec, as in pgx).
	ExecMode ExecMode

	// StatementCacheCapacity bounds the prepared statements kept per
	// connection in ExecModeCache; the least recently used is closed
	// beyond it (DSN key statement_cache_capacity). Default 512.
	StatementCacheCapacity int

	// MinReconnectDelay and MaxReconnectDelay bound the backoff between
	// failed connection attempts of a loop: the delay doubles from the
	// minimum after each failure up to the maximum. Requests arriving
	// while a loop waits to retry fail at once with the last error.
	MinReconnectDelay, MaxReconnectDelay time.Duration

	// ConfigureTypeMap, if set, is called with every pgtype.Map the pool
	// makes (one per loop, plus spares for scanning off the loops), e.g.
	// to register enum or composite types.
	ConfigureTypeMap func(*pgtype.Map)

	// OnNotice, if set, is called with each notice (RAISE NOTICE, warnings)
	// the server sends, on the loop of the connection: it must not block.
	OnNotice func(*pgconn.Notice)
}

// The DSN keys pgasync reads itself; pgconn would otherwise send them to the
// server as run-time parameters.
const (
	keyConnsPerLoop  = "pgasync_conns_per_loop"
	keyMaxPinned     = "pgasync_max_pinned_conns_per_loop"
	keyExecMode      = "default_query_exec_mode"
	keyStatementsCap = "statement_cache_capacity"
)

// ParseConfig parses dsn (a postgres:// URL or keyword=value pairs; empty
// reads only the environment) with pgconn.ParseConfig, plus pgasync's own
// keys, documented on Config.
func ParseConfig(dsn string) (*Config, error) {
	cc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgasync: %w", err)
	}
	cfg := &Config{Conn: cc}
	rp := cc.RuntimeParams
	intKey := func(key string, dst *int) error {
		s, ok := rp[key]
		if !ok {
			return nil
		}
		delete(rp, key)
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("pgasync: DSN key %s: %q is not a positive integer", key, s)
		}
		*dst = n
		return nil
	}
	if err := intKey(keyConnsPerLoop, &cfg.ConnsPerLoop); err != nil {
		return nil, err
	}
	if err := intKey(keyMaxPinned, &cfg.MaxPinnedConnsPerLoop); err != nil {
		return nil, err
	}
	if err := intKey(keyStatementsCap, &cfg.StatementCacheCapacity); err != nil {
		return nil, err
	}
	if s, ok := rp[keyExecMode]; ok {
		delete(rp, keyExecMode)
		switch s {
		case "cache_statement":
			cfg.ExecMode = ExecModeCache
		case "exec", "unnamed":
			cfg.ExecMode = ExecModeUnnamed
		default:
			return nil, fmt.Errorf("pgasync: DSN key %s: unsupported value %q (want cache_statement or exec)", keyExecMode, s)
		}
	}
	return cfg, nil
}

// withDefaults returns a copy of cfg with every zero field set to its
// default.
func (cfg *Config) withDefaults() (*Config, error) {
	if cfg == nil || cfg.Conn == nil {
		return nil, fmt.Errorf("pgasync: Config.Conn is nil: make the Config with ParseConfig")
	}
	c := *cfg
	c.Conn = cfg.Conn.Copy()
	if c.Group == nil {
		c.Group = fdpoll.Default()
	}
	if c.ConnsPerLoop <= 0 {
		c.ConnsPerLoop = DefaultConnsPerLoop
	}
	if c.MaxPinnedConnsPerLoop <= 0 {
		c.MaxPinnedConnsPerLoop = DefaultMaxPinnedConnsPerLoop
	}
	if c.StatementCacheCapacity <= 0 {
		c.StatementCacheCapacity = DefaultStatementCacheCapacity
	}
	if c.MinReconnectDelay <= 0 {
		c.MinReconnectDelay = DefaultMinReconnectDelay
	}
	if c.MaxReconnectDelay < c.MinReconnectDelay {
		c.MaxReconnectDelay = max(DefaultMaxReconnectDelay, c.MinReconnectDelay)
	}
	if c.Conn.ConnectTimeout <= 0 {
		c.Conn.ConnectTimeout = DefaultConnectTimeout
	}
	switch c.ExecMode {
	case ExecModeCache, ExecModeUnnamed:
	default:
		return nil, fmt.Errorf("pgasync: unknown %v", c.ExecMode)
	}
	return &c, nil
}
