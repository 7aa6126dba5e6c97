package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// TestGrantStatementsUseTheGrantIndex: with tens of thousands of access
// tokens issued since the table's statistics were taken (what a burst of
// client-credentials traffic leaves), the statements that find a grant's
// rows by request id are still answered from the (request_id, kind)
// index, for pgx's cached statements (generic plans) and one-off ones
// (custom plans). With request_id alone indexed the planner ANDed it with
// the primary key's kind prefix, read every access token's index entry,
// and a refresh took 20–40 ms (docs/performance.md, round 5).
func TestGrantStatementsUseTheGrantIndex(t *testing.T) {
	ctx := ctxT(t)
	dsn := pgtest.NewDatabase(t)
	s := pgtest.OpenStore(t, dsn, nil)
	must(t, s.CreateClient(ctx, &storage.Client{ID: "svc"}))
	pool := newPool(t, dsn)
	// Analyzed while nearly empty, then 30,000 access tokens and one
	// refresh family, as a load run leaves the table before autovacuum
	// catches up.
	if _, err := pool.Exec(ctx, `ANALYZE token_sessions`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO token_sessions (kind, key, request_id, client_id, subject, active, requested_at, expires_at, data)
		SELECT 'access', 'k' || g, 'r' || g, 'svc', '', true, now(), now() + interval '1 hour', '{}'::jsonb
		FROM generate_series(1, 30000) g
		UNION ALL SELECT 'refresh', 'rk', 'family', 'svc', 'alice', true, now(), now() + interval '1 hour', '{}'::jsonb`); err != nil {
		t.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	must(t, err)
	defer conn.Release()
	for name, sql := range postgres.GrantStatements {
		for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
			t.Run(fmt.Sprintf("statement=%s/plan=%s", name, mode), func(t *testing.T) {
				if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, `PREPARE grant_stmt AS `+sql); err != nil {
					t.Fatal(err)
				}
				defer func() { _, _ = conn.Exec(ctx, `DEALLOCATE grant_stmt`) }()
				args := "('family')"
				if strings.Count(sql, "$2") > 0 {
					args = "('rk', 'family')"
				}
				rows, err := conn.Query(ctx, `EXPLAIN EXECUTE grant_stmt`+args)
				if err != nil {
					t.Fatal(err)
				}
				var plan strings.Builder
				for rows.Next() {
					var line string
					must(t, rows.Scan(&line))
					plan.WriteString(line + "\n")
				}
				must(t, rows.Err())
				p := plan.String()
				if !strings.Contains(p, "token_sessions_request_id_kind_idx") || strings.Contains(p, "BitmapAnd") || strings.Contains(p, "Seq Scan") {
					t.Fatalf("plan does not find the family by the (request_id, kind) index alone:\n%s", p)
				}
			})
		}
	}
}
