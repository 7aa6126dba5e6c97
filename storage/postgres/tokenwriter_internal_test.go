package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
)

// writerTable makes a scratch table on the maintenance database (the
// internal test cannot use pgtest) with a unique column, like token keys.
func writerTable(t *testing.T, s *Store) string {
	t.Helper()
	name := fmt.Sprintf("tokenwriter_test_%d", rand.Uint64())
	if _, err := s.pool.Exec(t.Context(), `CREATE TABLE `+name+` (id bigserial PRIMARY KEY, v text NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.pool.Exec(context.Background(), `DROP TABLE `+name) })
	return name
}

// TestTokenWriterBatch runs batches the way the writer does and checks each
// write's own outcome: a guard that selects nothing is zero rows, a bad
// write gets its own error after the batch is rolled back, and every other
// write of the batch is committed exactly once.
func TestTokenWriterBatch(t *testing.T) {
	s := retryStore(t)
	table := writerTable(t, s)
	insert := `INSERT INTO ` + table + ` (v) SELECT $1::text WHERE $2::boolean`
	type want struct {
		rows int64
		err  error
	}
	cases := []struct {
		name   string
		values []string // "!" prefix: the guard refuses; "dup:" repeats an earlier value
		want   []want
	}{
		{"case=all written", []string{"a1", "a2", "a3", "a4", "a5"}, []want{{1, nil}, {1, nil}, {1, nil}, {1, nil}, {1, nil}}},
		{"case=one refused by its guard", []string{"b1", "!b2", "b3"}, []want{{1, nil}, {0, nil}, {1, nil}}},
		{"case=one with a NUL byte", []string{"c1", "c2\x00", "c3", "c4"}, []want{{1, nil}, {0, storage.ErrInvalidInput}, {1, nil}, {1, nil}}},
		{"case=a duplicate key", []string{"d1", "d2", "dup:d1"}, []want{{1, nil}, {1, nil}, {0, storage.ErrConflict}}},
		{"case=a batch of one", []string{"e1"}, []want{{1, nil}}},
	}
	for _, returnsID := range []bool{true, false} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/returnsID=%v", c.name, returnsID), func(t *testing.T) {
				sql, suffix := insert, fmt.Sprint(returnsID)
				if returnsID {
					sql += ` RETURNING id`
				}
				var batch []*tokenWrite
				for _, v := range c.values {
					ok := v[0] != '!'
					v = bare(v) + "-" + suffix
					batch = append(batch, &tokenWrite{sql: sql, args: []any{v, ok}, returnsID: returnsID, done: make(chan struct{})})
				}
				s.writer.run(batch)
				for i, tw := range batch {
					<-tw.done
					if tw.rows != c.want[i].rows {
						t.Errorf("write %d (%q): rows %d, want %d", i, c.values[i], tw.rows, c.want[i].rows)
					}
					if got := classify("write", tw.err); c.want[i].err == nil && got != nil || c.want[i].err != nil && !errors.Is(got, c.want[i].err) {
						t.Errorf("write %d (%q): err %v, want %v", i, c.values[i], got, c.want[i].err)
					}
					if returnsID && tw.rows == 1 && tw.id == 0 {
						t.Errorf("write %d: no id returned", i)
					}
				}
				for i, v := range c.values {
					if v[0] == '!' || c.want[i].err != nil {
						continue
					}
					var n int
					if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+table+` WHERE v = $1`, bare(v)+"-"+suffix).Scan(&n); err != nil || n != 1 {
						t.Errorf("value %q stored %d times (%v), want once", v, n, err)
					}
				}
			})
		}
	}
}

// bare strips the test markers from a value.
func bare(v string) string {
	if v[0] == '!' {
		return v[1:]
	}
	if len(v) > 4 && v[:4] == "dup:" {
		return v[4:]
	}
	return v
}

// TestTokenWriterConcurrentWrites: writes submitted together (so they
// share batches) each get their own committed row and id.
func TestTokenWriterConcurrentWrites(t *testing.T) {
	s := retryStore(t)
	table := writerTable(t, s)
	const n = 64
	ids := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var rows int64
			ids[i], rows, errs[i] = s.writer.write(t.Context(), `INSERT INTO `+table+` (v) VALUES ($1) RETURNING id`, []any{fmt.Sprint("w", i)}, true)
			if errs[i] == nil && rows != 1 {
				errs[i] = fmt.Errorf("rows %d", rows)
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range n {
		if errs[i] != nil || ids[i] == 0 || seen[ids[i]] {
			t.Fatalf("write %d: id %d, err %v", i, ids[i], errs[i])
		}
		seen[ids[i]] = true
	}
	var count int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&count); err != nil || count != n {
		t.Fatalf("%d rows (%v), want %d", count, err, n)
	}
	s.writer.close()
	if _, _, err := s.writer.write(t.Context(), `SELECT 1`, nil, false); !errors.Is(err, errWriterClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
