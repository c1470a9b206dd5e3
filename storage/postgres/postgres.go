package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/certfleet/certfleet/storage"
)

// Defaults for the zero values of Config.
const (
	DefaultTable        = "certfleet"
	DefaultLockTTL      = 15 * time.Second
	DefaultRetryTimeout = 5 * time.Second
	// MinLockTTL is the shortest LockTTL accepted: the keepalive must be able
	// to renew a lease well within it.
	MinLockTTL = 300 * time.Millisecond
)

// defaultConnectTimeout applies when the connection string sets none, so that
// an unreachable server makes an operation fail instead of hang.
const defaultConnectTimeout = 10 * time.Second

// Config configures a Storage. Only ConnString is required.
type Config struct {
	// ConnString says how to reach the database: a URL
	// (postgres://user@host:5432/db?sslmode=verify-full) or a key=value DSN
	// (host=... dbname=...). Pool settings such as pool_max_conns are read
	// from it as pgxpool does. Rather than putting a password in it, use
	// PGPASSWORD or a PGPASSFILE, which pgx reads too. ConnString is never
	// included in errors or logs.
	ConnString string

	// Schema holds the tables. It is created if missing. Default: the
	// connection's current schema (the first one of its search_path that
	// exists, usually public).
	Schema string

	// Table names the table of values. The lock table is Table+"_locks" and
	// the fencing-token sequence Table+"_fence". Default: DefaultTable. Schema
	// and Table are plain identifiers: letters, digits and underscores, not
	// starting with a digit.
	Table string

	// LockTTL is how long a lock outlives a holder that died or stalled; a
	// held lock is renewed every LockTTL/3. Default: DefaultLockTTL. Minimum:
	// MinLockTTL.
	LockTTL time.Duration

	// RetryTimeout bounds how long one operation retries transient errors
	// (the context bounds it too). Default: DefaultRetryTimeout. Negative:
	// no retries.
	RetryTimeout time.Duration

	// Logger receives warnings such as a lost lock or a reconnecting
	// listener. Default: no logging.
	Logger *slog.Logger
}

// Storage is a certmagic.Storage in PostgreSQL. It also implements
// certmagic.TryLocker, certmagic.LockLeaseRenewer, storage.Fencer and
// storage.Watcher. It is safe for concurrent use. Close it when done.
type Storage struct {
	pool         *pgxpool.Pool
	listenConfig *pgx.ConnConfig
	schema       string
	table        string
	lockTTL      time.Duration
	retryTimeout time.Duration
	log          *slog.Logger
	sql          statements
	dataChannel  string // NOTIFY channel of key changes
	lockChannel  string // NOTIFY channel of lock releases

	// life ends when Close is called; every background goroutine watches it
	// and is counted in wg.
	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
	held   map[string][]*lease // locks this client holds (or lost and not yet unlocked), by name

	feed *feed
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
	_ storage.Fencer             = (*Storage)(nil)
	_ storage.Watcher            = (*Storage)(nil)
)

var identifierRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxIdentifier is PostgreSQL's identifier limit (NAMEDATALEN-1 bytes).
const maxIdentifier = 63

// New connects to the database, creates the schema, tables and sequence if
// they are missing, starts listening for changes, and returns the storage.
// ctx bounds the setup only.
func New(ctx context.Context, cfg Config) (*Storage, error) {
	if cfg.ConnString == "" {
		return nil, errors.New("postgres storage: Config.ConnString is empty: set it to a postgres:// URL or a key=value DSN")
	}
	table := cfg.Table
	if table == "" {
		table = DefaultTable
	}
	if !identifierRE.MatchString(table) || len(table)+len("_locks") > maxIdentifier {
		return nil, fmt.Errorf("postgres storage: Config.Table %q is not a valid table name: use letters, digits and underscores, not starting with a digit, at most %d bytes", table, maxIdentifier-len("_locks"))
	}
	if cfg.Schema != "" && (!identifierRE.MatchString(cfg.Schema) || len(cfg.Schema) > maxIdentifier) {
		return nil, fmt.Errorf("postgres storage: Config.Schema %q is not a valid schema name: use letters, digits and underscores, not starting with a digit, at most %d bytes", cfg.Schema, maxIdentifier)
	}
	ttl := cfg.LockTTL
	switch {
	case ttl == 0:
		ttl = DefaultLockTTL
	case ttl < MinLockTTL:
		return nil, fmt.Errorf("postgres storage: Config.LockTTL %v is too short: use at least %v (default %v)", cfg.LockTTL, MinLockTTL, DefaultLockTTL)
	}
	retry := cfg.RetryTimeout
	switch {
	case retry == 0:
		retry = DefaultRetryTimeout
	case retry < 0:
		retry = 0
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	poolConfig, err := pgxpool.ParseConfig(cfg.ConnString)
	if err != nil {
		return nil, errConnString
	}
	if poolConfig.ConnConfig.ConnectTimeout == 0 {
		poolConfig.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	if err != nil {
		return nil, fmt.Errorf("postgres storage: creating connection pool: %w", err)
	}

	schema := cfg.Schema
	if schema == "" {
		if schema, err = currentSchema(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}

	life, stop := context.WithCancel(context.Background())
	s := &Storage{
		pool:         pool,
		listenConfig: poolConfig.ConnConfig.Copy(),
		schema:       schema,
		table:        table,
		lockTTL:      ttl,
		retryTimeout: retry,
		log:          logger.With("storage", "postgres", "schema", schema, "table", table),
		sql:          newStatements(schema, table),
		life:         life,
		stop:         stop,
		held:         make(map[string][]*lease),
	}
	base := channelBase(schema, table)
	s.dataChannel, s.lockChannel = base+"_data", base+"_lock"

	if err := s.setup(ctx); err != nil {
		stop()
		pool.Close()
		return nil, err
	}
	s.feed = newFeed(s)
	if err := s.feed.start(ctx); err != nil {
		stop()
		s.wg.Wait()
		pool.Close()
		return nil, err
	}
	return s, nil
}

// String describes the storage without its connection string, which may
// hold a password.
func (s *Storage) String() string {
	return fmt.Sprintf("postgres storage %s.%s", s.schema, s.table)
}

// GoString is String, for %#v.
func (s *Storage) GoString() string { return s.String() }

// Format writes String for every verb.
func (s *Storage) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue is String, for slog.
func (s *Storage) LogValue() slog.Value { return slog.StringValue(s.String()) }

// String describes c with the password of its connection string, if any,
// redacted: a URL shows its host and database, a key=value DSN nothing.
func (c Config) String() string {
	return fmt.Sprintf("postgres.Config{ConnString: %s, Schema: %q, Table: %q, LockTTL: %v, RetryTimeout: %v}",
		redactConnString(c.ConnString), c.Schema, c.Table, c.LockTTL, c.RetryTimeout)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// MarshalJSON writes String as a JSON string, so that a Config inside a value
// marshalled to JSON (as slog's JSON handler does with nested structs)
// shows no secret either.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// Format writes String for every verb.
func (c Config) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is how slog shows a Config: without the password.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("conn_string", redactConnString(c.ConnString)),
		slog.String("schema", c.Schema), slog.String("table", c.Table), slog.Duration("lock_ttl", c.LockTTL))
}

// redactConnString returns cs without its secrets: a URL with its password
// and password parameters replaced, or "[redacted]" for a DSN, whose
// quoting rules this does not repeat.
func redactConnString(cs string) string {
	switch {
	case cs == "":
		return "unset"
	case !strings.Contains(cs, "://"):
		return "[redacted]"
	}
	u, err := url.Parse(cs)
	if err != nil {
		return "[redacted]"
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// Close releases the locks this client holds (best effort, for at most a
// few seconds), stops their keepalives and the listener, closes the
// channels returned by Watch and closes the connection pool. It is safe to
// call more than once.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var live []*lease
	for _, ls := range s.held {
		live = append(live, ls...)
	}
	s.held = make(map[string][]*lease)
	s.mu.Unlock()

	for _, l := range live {
		l.stopKeepalive()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeReleaseTimeout)
	for _, l := range live {
		if !l.isLost() {
			// Best effort: an unreleased lock expires after LockTTL anyway.
			_, _, _ = s.release(ctx, l.name, l.owner)
		}
	}
	cancel()

	s.stop()
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// closeReleaseTimeout bounds how long Close tries to release held locks.
const closeReleaseTimeout = 3 * time.Second

// errClosed is returned by operations on a closed Storage.
var errClosed = errors.New("postgres storage: storage is closed")

// errConnString reports an unparsable connection string. The parser's error
// is dropped, not wrapped: it may quote the string, password included.
var errConnString = errors.New("postgres storage: Config.ConnString cannot be parsed: give a postgres:// URL or a key=value DSN (details are withheld because they may contain the password)")

func currentSchema(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var schema *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return "", fmt.Errorf("postgres storage: finding the current schema: %w", err)
	}
	if schema == nil || *schema == "" {
		return "", errors.New("postgres storage: the connection has no current schema (its search_path names no existing schema): set Config.Schema")
	}
	return *schema, nil
}

// channelBase names the NOTIFY channels of one table. Channel names are
// identifiers (at most 63 bytes), so they are derived from a hash.
func channelBase(schema, table string) string {
	sum := sha256.Sum256([]byte(schema + "." + table))
	return "certfleet_" + hex.EncodeToString(sum[:12])
}

// setup creates whatever is missing of the schema, the tables and the
// sequence. Creation runs under a transaction-level advisory lock, because
// concurrent CREATE ... IF NOT EXISTS can still fail on catalog conflicts.
// Existing objects are detected first so that a role allowed only to use
// them (not to create) can run.
func (s *Storage) setup(ctx context.Context) error {
	present := func() (bool, error) {
		var ok bool
		err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL`,
			s.sql.table, s.sql.locks, s.sql.fence).Scan(&ok)
		if err != nil {
			return false, fmt.Errorf("postgres storage: checking for tables: %w", err)
		}
		return ok, nil
	}
	if ok, err := present(); err != nil || ok {
		return err
	}
	sum := sha256.Sum256([]byte("certfleet setup " + s.schema + "." + s.table))
	lockID := int64(binary.BigEndian.Uint64(sum[:8]))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockID); err != nil {
			return err
		}
		var schemaExists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.schema).Scan(&schemaExists); err != nil {
			return err
		}
		if !schemaExists {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{s.schema}.Sanitize()); err != nil {
				return err
			}
		}
		for _, stmt := range s.sql.create {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres storage: creating tables %s and %s: %w", s.sql.table, s.sql.locks, err)
	}
	return nil
}

// statements holds the SQL of one table, with its quoted identifiers
// spliced in. Only validated identifiers are spliced, and they are quoted
// by pgx.Identifier.Sanitize; every value is a bind parameter.
type statements struct {
	table, locks, fence string // quoted, schema-qualified names
	create              []string

	store, load, exists, existsAny, stat, fileExists  string
	listAll, listTree, listChildren, listRootChildren string
	deleteTree, deleteAll                             string
	ensureLock, acquire, extend, release, fencing     string
}

func newStatements(schema, table string) statements {
	t := pgx.Identifier{schema, table}.Sanitize()
	l := pgx.Identifier{schema, table + "_locks"}.Sanitize()
	f := pgx.Identifier{schema, table + "_fence"}.Sanitize()
	r := strings.NewReplacer("{T}", t, "{L}", l, "{F}", f)
	q := func(s string) string { return r.Replace(s) }
	// notify is the payload of a change notification: the key, or "" (resync)
	// if the key would not fit in a NOTIFY payload (under 8000 bytes).
	const notify = `pg_notify($%d, CASE WHEN octet_length(key) < 7900 THEN key ELSE '' END)`
	return statements{
		table: t, locks: l, fence: f,
		create: []string{
			q(`CREATE TABLE IF NOT EXISTS {T} (
				key      text COLLATE "C" PRIMARY KEY,
				value    bytea NOT NULL,
				modified timestamptz NOT NULL DEFAULT now())`),
			q(`CREATE TABLE IF NOT EXISTS {L} (
				name        text COLLATE "C" PRIMARY KEY,
				owner       text NOT NULL,
				fence       bigint NOT NULL,
				expires_at  timestamptz NOT NULL,
				acquired_at timestamptz NOT NULL DEFAULT now())`),
			q(`CREATE SEQUENCE IF NOT EXISTS {F} AS bigint`),
		},

		// $1 key, $2 value, $3 channel.
		store: q(`WITH w AS (
				INSERT INTO {T} (key, value, modified) VALUES ($1, $2, now())
				ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified
				RETURNING key)
			SELECT ` + fmt.Sprintf(notify, 3) + ` FROM w`),
		// $1 key.
		load: q(`SELECT value FROM {T} WHERE key = $1`),
		// $1 key, $2 key+"/", $3 key+"0".
		exists: q(`SELECT EXISTS (SELECT 1 FROM {T} WHERE key = $1)
			OR EXISTS (SELECT 1 FROM {T} WHERE key >= $2 AND key < $3)`),
		// $1 key, $2 key+"/", $3 key+"0". A file wins over a directory of the
		// same name.
		stat: q(`(SELECT true, octet_length(value)::bigint, modified FROM {T} WHERE key = $1)
			UNION ALL
			(SELECT false, 0::bigint, NULL::timestamptz FROM {T} WHERE key >= $2 AND key < $3 LIMIT 1)`),
		existsAny:  q(`SELECT EXISTS (SELECT 1 FROM {T})`),
		fileExists: q(`SELECT EXISTS (SELECT 1 FROM {T} WHERE key = $1)`),
		listAll:    q(`SELECT key FROM {T} ORDER BY key`),
		// $1 prefix+"/", $2 prefix+"0".
		listTree: q(`SELECT key FROM {T} WHERE key >= $1 AND key < $2 ORDER BY key`),
		// $1 prefix, $2 prefix+"/", $3 prefix+"0": the first component below prefix.
		listChildren: q(`SELECT DISTINCT split_part(substr(key, char_length($1::text) + 2), '/', 1) AS child
			FROM {T} WHERE key >= $2 AND key < $3 ORDER BY child`),
		listRootChildren: q(`SELECT DISTINCT split_part(key, '/', 1) AS child FROM {T} ORDER BY child`),
		// $1 key, $2 key+"/", $3 key+"0", $4 channel.
		deleteTree: q(`WITH d AS (
				DELETE FROM {T} WHERE key = $1 OR (key >= $2 AND key < $3) RETURNING key)
			SELECT ` + fmt.Sprintf(notify, 4) + ` FROM d`),
		// $1 channel.
		deleteAll: q(`WITH d AS (DELETE FROM {T} RETURNING key)
			SELECT ` + fmt.Sprintf(notify, 1) + ` FROM d`),

		// $1 name. Makes sure the lock has a row (a free one if new), so
		// that acquire can be an UPDATE.
		ensureLock: q(`INSERT INTO {L} (name, owner, fence, expires_at) VALUES ($1, '', 0, '-infinity')
			ON CONFLICT (name) DO NOTHING`),
		// $1 name, $2 owner, $3 lease in microseconds. One statement takes a
		// free or expired lock, so two clients can never both win. It is an
		// UPDATE because then the new fencing token is drawn after the row is
		// locked and rechecked: a later holder always draws a larger token.
		// An owner re-running it (a retry after a lost reply) gets its own
		// lock back with the same token.
		acquire: q(`UPDATE {L} SET
				owner = $2,
				fence = CASE WHEN owner = $2 THEN fence ELSE nextval('{F}') END,
				expires_at = now() + $3::bigint * interval '1 microsecond',
				acquired_at = now()
			WHERE name = $1 AND (expires_at < now() OR owner = $2)
			RETURNING fence`),
		// $1 name, $2 owner, $3 lease in microseconds. Never shortens a lease.
		extend: q(`UPDATE {L} SET expires_at = greatest(expires_at, now() + $3::bigint * interval '1 microsecond')
			WHERE name = $1 AND owner = $2
			RETURNING fence`),
		// $1 name, $2 owner, $3 channel.
		release: q(`WITH d AS (DELETE FROM {L} WHERE name = $1 AND owner = $2 RETURNING name)
			SELECT pg_notify($3, name) FROM d`),
		// $1 name, $2 owner.
		fencing: q(`SELECT fence FROM {L} WHERE name = $1 AND owner = $2`),
	}
}
