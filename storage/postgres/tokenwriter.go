package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tokenWriter groups the token INSERTs of concurrent mints that run outside
// a transaction (client credentials, token exchange, codes at the
// authorization endpoint) into one implicit transaction per round trip.
//
// Why: on two cores Postgres spent ~0.3 ms of CPU per token when 16–32
// connections each committed one INSERT, and ~0.18 ms when a few
// connections committed ten each (pgbench with the real statement,
// docs/performance.md round 4): the cost is the commit and the contention
// of many writers on the same index pages, not the rows.
//
// What does not change: every write is still its own guarded statement
// (INSERT … SELECT … FROM clients WHERE NOT disabled FOR SHARE, with its
// audit row in the same statement), and a caller learns its result only
// after the transaction that holds it committed. A batch is one pgx batch
// on one connection with a single Sync, i.e. one implicit transaction: a
// failing statement rolls the whole batch back, and then each write is
// retried on its own, so one bad write (a NUL byte, a duplicate key) gets
// its own error and costs the others nothing but the retry. A disable that
// races a batch waits for it (the FOR SHARE row locks) and then sees every
// token it committed, as with a single INSERT.
type tokenWriter struct {
	pool  *pgxpool.Pool
	queue chan *tokenWrite
	quit  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
	// mu guards closed: a write is queued only while the writer is open,
	// so close's final drain sees every write the workers left.
	mu     sync.RWMutex
	closed bool
}

// tokenWrite is one queued statement and, once done is closed, its result.
type tokenWrite struct {
	sql  string
	args []any
	// returnsID: the statement yields one row (the audit row's id) or none.
	returnsID bool

	id   int64
	rows int64
	err  error
	done chan struct{}
}

const (
	// tokenWriters is how many batches can be in flight at once: one
	// commits while the next fills.
	tokenWriters = 2
	// maxTokenBatch bounds a batch (and so the work a failing batch
	// repeats).
	maxTokenBatch = 32
	// tokenBatchTimeout bounds one batch; callers stop waiting when their
	// own context ends.
	tokenBatchTimeout = 15 * time.Second
)

// errWriterClosed is a write submitted after Close.
var errWriterClosed = errors.New("postgres: store closed")

func newTokenWriter(pool *pgxpool.Pool) *tokenWriter {
	w := &tokenWriter{pool: pool, queue: make(chan *tokenWrite, 4*maxTokenBatch), quit: make(chan struct{})}
	for range tokenWriters {
		w.wg.Go(w.loop)
	}
	return w
}

// close stops the workers after the batches in flight; writes still
// queued fail with errWriterClosed.
func (w *tokenWriter) close() {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.quit)
		w.wg.Wait()
		for {
			select {
			case tw := <-w.queue:
				tw.err = errWriterClosed
				close(tw.done)
			default:
				return
			}
		}
	})
}

// write runs one statement through a batch and returns the audit id (when
// returnsID) and the rows it affected. pgx.ErrNoRows is reported as zero
// rows, not as an error.
func (w *tokenWriter) write(ctx context.Context, sql string, args []any, returnsID bool) (id, rows int64, err error) {
	tw := &tokenWrite{sql: sql, args: args, returnsID: returnsID, done: make(chan struct{})}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return 0, 0, errWriterClosed
	}
	select {
	case w.queue <- tw:
	case <-ctx.Done():
		w.mu.RUnlock()
		return 0, 0, ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case <-tw.done:
		return tw.id, tw.rows, tw.err
	case <-ctx.Done():
		// The write may still commit, as a statement whose caller went
		// away may; the caller answers with an error either way.
		return 0, 0, ctx.Err()
	}
}

func (w *tokenWriter) loop() {
	batch := make([]*tokenWrite, 0, maxTokenBatch)
	for {
		select {
		case <-w.quit:
			return
		case tw := <-w.queue:
			batch = append(batch[:0], tw)
		}
	fill:
		for len(batch) < maxTokenBatch {
			select {
			case tw := <-w.queue:
				batch = append(batch, tw)
			default:
				break fill
			}
		}
		w.run(batch)
	}
}

// run executes batch and completes every write in it.
func (w *tokenWriter) run(batch []*tokenWrite) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenBatchTimeout)
	defer cancel()
	if len(batch) == 1 || w.runBatch(ctx, batch) != nil {
		for _, tw := range batch {
			tw.err = w.runOne(ctx, tw)
		}
	}
	for _, tw := range batch {
		close(tw.done)
	}
}

// runBatch sends every write on one connection with one Sync. It fills in
// results only when the implicit transaction committed; on any error the
// batch was rolled back and nothing of it counts.
func (w *tokenWriter) runBatch(ctx context.Context, batch []*tokenWrite) error {
	b := &pgx.Batch{}
	for _, tw := range batch {
		b.Queue(tw.sql, tw.args...)
	}
	br := w.pool.SendBatch(ctx, b)
	ids := make([]int64, len(batch))
	rows := make([]int64, len(batch))
	var firstErr error
	for i, tw := range batch {
		if firstErr != nil {
			break
		}
		if tw.returnsID {
			switch err := br.QueryRow().Scan(&ids[i]); {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				firstErr = err
			default:
				rows[i] = 1
			}
			continue
		}
		tag, err := br.Exec()
		if err != nil {
			firstErr = err
			continue
		}
		rows[i] = tag.RowsAffected()
	}
	// Close reads the Sync's answer: the commit of the implicit
	// transaction. Only then do the results count.
	if err := br.Close(); firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return firstErr
	}
	for i, tw := range batch {
		tw.id, tw.rows = ids[i], rows[i]
	}
	return nil
}

// runOne executes a write on its own (a batch of one, or the retry of a
// batch that failed): the audit id when the statement returns one, and the
// rows written (pgx.ErrNoRows is zero rows).
func (w *tokenWriter) runOne(ctx context.Context, tw *tokenWrite) error {
	if tw.returnsID {
		switch err := w.pool.QueryRow(ctx, tw.sql, tw.args...).Scan(&tw.id); {
		case errors.Is(err, pgx.ErrNoRows):
			tw.id, tw.rows = 0, 0
			return nil
		case err != nil:
			return err
		}
		tw.rows = 1
		return nil
	}
	tag, err := w.pool.Exec(ctx, tw.sql, tw.args...)
	if err != nil {
		return err
	}
	tw.rows = tag.RowsAffected()
	return nil
}
