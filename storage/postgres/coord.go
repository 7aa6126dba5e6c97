package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// TryLock implements storage.Locker with a session advisory lock keyed by
// hashtext(name). The lock lives on one pooled connection that stays out of
// the pool until release, because an advisory lock belongs to the session
// that took it.
func (s *Store) TryLock(ctx context.Context, name string) (func(), bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, classify("postgres: lock", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, name).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, classify("postgres: lock", err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var unlocked bool
			err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock(hashtext($1))`, name).Scan(&unlocked)
			if err != nil || !unlocked {
				// Closing the session is the one sure way to drop its
				// locks; the pool replaces the connection.
				_ = conn.Conn().Close(ctx)
			}
			conn.Release()
		})
	}
	return release, true, nil
}

// Notify implements storage.Notifier. Inside a transaction the notification
// is delivered on commit, so listeners never see a change that was rolled
// back.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	_, err := s.q(ctx).Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return classify("postgres: notify", err)
}

// Subscribe implements storage.Notifier on a dedicated connection outside
// the pool (LISTEN would otherwise pin a pool slot forever). When the
// connection drops it reconnects with capped exponential backoff;
// notifications sent while disconnected are lost, so after a reconnect it
// delivers one empty payload, meaning "reload everything" (and every
// consumer also reloads periodically). The channel closes when ctx ends.
func (s *Store) Subscribe(ctx context.Context, channel string) (<-chan string, error) {
	conn, err := s.listen(ctx, channel)
	if err != nil {
		return nil, err
	}
	out := make(chan string, 16)
	go s.deliver(ctx, channel, conn, out)
	return out, nil
}

// ListenApplicationName is the application_name of every LISTEN
// connection, so operators (and tests) can tell it apart in
// pg_stat_activity from pooled query connections.
const ListenApplicationName = "bulwark-listen"

func (s *Store) listen(ctx context.Context, channel string) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenApplicationName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classify("postgres: listen", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		closeConn(ctx, conn)
		return nil, classify("postgres: listen", err)
	}
	return conn, nil
}

func (s *Store) deliver(ctx context.Context, channel string, conn *pgx.Conn, out chan<- string) {
	defer close(out)
	log := s.log.WithField("channel", channel)
	const (
		minBackoff = 100 * time.Millisecond
		maxBackoff = 10 * time.Second
	)
	backoff := minBackoff
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			var err error
			if conn, err = s.listen(ctx, channel); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.WithError(err).WithField("retry_in", backoff).Warn("postgres: LISTEN reconnect failed")
				backoff = min(backoff*2, maxBackoff)
				continue
			}
			log.Info("postgres: LISTEN connection restored")
			backoff = minBackoff
			// Notifications sent while disconnected are lost: an empty
			// payload tells the subscriber to reload everything.
			select {
			case out <- "":
			case <-ctx.Done():
				closeConn(ctx, conn)
				return
			}
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			closeConn(ctx, conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			log.WithError(err).Warn("postgres: LISTEN connection lost")
			continue
		}
		select {
		case out <- n.Payload:
		case <-ctx.Done():
			closeConn(ctx, conn)
			return
		}
	}
}

// janitorTables lists what DeleteExpired trims, with the column that says
// when a row expired.
var janitorTables = []struct{ table, column string }{
	{"token_sessions", "expires_at"},
	{"client_assertion_jtis", "expires_at"},
	{"login_sessions", "expires_at"},
	{"rp_sessions", "expires_at"},
	{"blocks", "expires_at"},
	{"attempt_counters", "expires_at"},
	{"used_marks", "expires_at"},
	{"device_authorizations", "expires_at"},
	{"dpop_proofs", "expires_at"},
}

// DeleteExpired implements storage.Janitor. Each statement removes at most
// batch rows, so no single transaction holds many row locks or bloats WAL
// in one burst while tokens are being issued.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time, batch int) (int64, error) {
	var total int64
	for _, t := range janitorTables {
		n, err := s.deleteBatched(ctx, t.table, t.column, before, batch)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// TrimAudit implements storage.Janitor. The append-only trigger refuses
// UPDATE only; retention deletes are allowed.
func (s *Store) TrimAudit(ctx context.Context, before time.Time, batch int) (int64, error) {
	return s.deleteBatched(ctx, "audit_events", "time", before, batch)
}

func (s *Store) deleteBatched(ctx context.Context, table, column string, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		return 0, errors.New("postgres: janitor batch must be positive")
	}
	sql := fmt.Sprintf(`DELETE FROM %[1]s WHERE ctid IN (SELECT ctid FROM %[1]s WHERE %[2]s < $1 LIMIT $2)`,
		table, column)
	var total int64
	for {
		tag, err := s.q(ctx).Exec(ctx, sql, before, batch)
		if err != nil {
			return total, classify("postgres: delete expired "+table, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// closeConn closes a LISTEN connection even after ctx ended, but never
// waits long on a dead network.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}
