package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/certmagic"
	"github.com/jackc/pgx/v5"
)

// Store puts value at key, replacing any value there atomically, and
// notifies watchers when the write commits.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	if err := checkKey("store", key, false); err != nil {
		return err
	}
	if value == nil {
		value = []byte{} // the column is NOT NULL; nil would be sent as NULL
	}
	_, err := s.retry(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, s.sql.store, key, value, s.dataChannel)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres storage: store %q: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist if the
// database says there is none. Any failure to ask is another error.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey("load", key, false); err != nil {
		return nil, err
	}
	var value []byte
	_, err := s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.sql.load, key).Scan(&value)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("postgres storage: load %q: %w", key, fs.ErrNotExist)
	case err != nil:
		return nil, fmt.Errorf("postgres storage: load %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, nil
}

// Delete deletes key and every key below it (key/...), but not keys that
// merely start with the same characters (keyx/...). A missing key is not an
// error. Watchers are notified of every deleted key.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if err := checkKey("delete", key, true); err != nil {
		return err
	}
	_, err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		if key == "" {
			_, err = s.pool.Exec(ctx, s.sql.deleteAll, s.dataChannel)
		} else {
			_, err = s.pool.Exec(ctx, s.sql.deleteTree, key, key+"/", key+"0", s.dataChannel)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres storage: delete %q: %w", key, err)
	}
	return nil
}

// Exists reports whether key holds a value or is a directory (a prefix of
// keys that do). When the database cannot be asked, it answers true: "no"
// would make callers such as certmagic act as if the data were gone.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	if checkKey("exists", key, true) != nil {
		return false
	}
	var exists bool
	_, err := s.retry(ctx, func(ctx context.Context) error {
		if key == "" {
			return s.pool.QueryRow(ctx, s.sql.existsAny).Scan(&exists)
		}
		return s.pool.QueryRow(ctx, s.sql.exists, key, key+"/", key+"0").Scan(&exists)
	})
	if err != nil {
		s.log.Warn("exists: cannot reach the database; answering true", "key", key, "error", err)
		return true
	}
	return exists
}

// Stat describes key: a value (IsTerminal true, with size and modification
// time) or a directory (IsTerminal false). If key is both, the value wins.
// It returns an error wrapping fs.ErrNotExist if key is neither.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := checkKey("stat", key, true); err != nil {
		return certmagic.KeyInfo{}, err
	}
	var info certmagic.KeyInfo
	var found bool
	_, err := s.retry(ctx, func(ctx context.Context) error {
		info, found = certmagic.KeyInfo{Key: key}, false
		if key == "" {
			var any bool
			err := s.pool.QueryRow(ctx, s.sql.existsAny).Scan(&any)
			found = any
			return err
		}
		rows, err := s.pool.Query(ctx, s.sql.stat, key, key+"/", key+"0")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var terminal bool
			var size int64
			var modified *time.Time
			if err := rows.Scan(&terminal, &size, &modified); err != nil {
				return err
			}
			if terminal || !found {
				info.IsTerminal, info.Size = terminal, size
				if modified != nil {
					info.Modified = *modified
				}
			}
			found = true
		}
		return rows.Err()
	})
	switch {
	case err != nil:
		return certmagic.KeyInfo{}, fmt.Errorf("postgres storage: stat %q: %w", key, err)
	case !found:
		return certmagic.KeyInfo{}, fmt.Errorf("postgres storage: stat %q: %w", key, fs.ErrNotExist)
	}
	return info, nil
}

// List returns the keys below prefix ("" is the root), sorted. Not
// recursive, it returns the names one level down: values and directories.
// Recursive, it returns every key that holds a value below prefix, at any
// depth. It returns an error wrapping fs.ErrNotExist if prefix is neither a
// directory nor a value; for a value it returns no keys.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	if err := checkKey("list", prefix, true); err != nil {
		return nil, err
	}
	var keys []string
	_, err := s.retry(ctx, func(ctx context.Context) error {
		var rows pgx.Rows
		var err error
		switch {
		case recursive && prefix == "":
			rows, err = s.pool.Query(ctx, s.sql.listAll)
		case recursive:
			rows, err = s.pool.Query(ctx, s.sql.listTree, prefix+"/", prefix+"0")
		case prefix == "":
			rows, err = s.pool.Query(ctx, s.sql.listRootChildren)
		default:
			rows, err = s.pool.Query(ctx, s.sql.listChildren, prefix, prefix+"/", prefix+"0")
		}
		if err != nil {
			return err
		}
		keys, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres storage: list %q: %w", prefix, err)
	}
	if !recursive && prefix != "" {
		for i, child := range keys {
			keys[i] = prefix + "/" + child
		}
	}
	if len(keys) > 0 || prefix == "" {
		return keys, nil
	}
	var isFile bool
	_, err = s.retry(ctx, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, s.sql.fileExists, prefix).Scan(&isFile)
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("postgres storage: list %q: %w", prefix, err)
	case !isFile:
		return nil, fmt.Errorf("postgres storage: list %q: %w", prefix, fs.ErrNotExist)
	}
	return []string{}, nil
}

// checkKey rejects a key (or, with root, a prefix where "" means the root)
// that the storage could not hold.
func checkKey(op, key string, root bool) error {
	if key == "" {
		if root {
			return nil
		}
		return fmt.Errorf("postgres storage: %s: key is empty: give a slash-separated name", op)
	}
	if err := checkName(key); err != nil {
		return fmt.Errorf("postgres storage: %s: key %w", op, err)
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "//") {
		return fmt.Errorf("postgres storage: %s: key %q has an empty path component: remove leading, trailing and doubled slashes", op, key)
	}
	return nil
}

// checkLockName rejects a lock name that the lock table could not hold.
func checkLockName(name string) error {
	if name == "" {
		return errors.New("postgres storage: lock name is empty: give a non-empty name")
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("postgres storage: lock name %w", err)
	}
	return nil
}

// checkName checks what PostgreSQL text and the primary-key index accept.
func checkName(name string) error {
	switch {
	case len(name) > maxNameBytes:
		return fmt.Errorf("%.40q... is %d bytes long: use at most %d bytes", name, len(name), maxNameBytes)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%q contains a NUL byte, which PostgreSQL text cannot hold: remove it", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8: encode it as UTF-8", name)
	}
	return nil
}
