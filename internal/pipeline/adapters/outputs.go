package adapters

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/load/postgres"
)

// Parquet is the Parquet output: a dataset directory's sink.
type Parquet[R any] struct{ Sink *parquet.Sink[R] }

func (Parquet[R]) Name() string { return "parquet" }

// FinalRowsOnly: the files are append-only, one row per call; a tracked
// call's row is written once, when it ends (pipeline.FinalRowsOnly).
func (Parquet[R]) FinalRowsOnly() {}

// Commit writes rows and makes every file holding them visible, durably.
func (p Parquet[R]) Commit(ctx context.Context, rows []R) (int, error) {
	if len(rows) > 0 {
		if err := p.Sink.Write(ctx, rows); err != nil {
			return 0, err
		}
	}
	info, err := p.Sink.Commit(ctx)
	return len(info.Files), err
}

// parquetResume is the Parquet output of a rerun: it holds the keys its
// directory had committed.
type parquetResume[R any] struct {
	Parquet[R]
	committed *extract.DigestSet
}

func (p parquetResume[R]) Holds(_ context.Context, items []pipeline.Item) ([]bool, error) {
	held := make([]bool, len(items))
	for i, it := range items {
		held[i] = p.committed.Has(it.Key.Digest())
	}
	return held, nil
}

// NewParquet is the Parquet output over sink; committed (may be nil) are the
// keys its directory already holds (see CommittedKeys), which a rerun does
// not ask again.
func NewParquet[R any](sink *parquet.Sink[R], committed *extract.DigestSet) pipeline.Output[R] {
	if committed == nil || committed.Len() == 0 { // an empty set would only cost a digest per key
		return Parquet[R]{sink}
	}
	return parquetResume[R]{Parquet[R]{sink}, committed}
}

// partitionedResume is the Parquet output of a run whose items name the
// partition their row goes to (etl discover: a listed call's row is filed
// by its listing's waitBegin, else callBegin, else logDate, which can lie
// days before the window listed, a chat that waited in a queue). Whether
// the dataset holds a key is looked up in that partition: its committed
// keys are read the first time an item of it comes, then kept. Memory
// follows the partitions the run meets, not the dataset's history, and the
// lookup is exact however far back a partition lies.
type partitionedResume[R any] struct {
	Parquet[R]
	dir       string
	partition func(pipeline.Item) (string, error)
	log       zerolog.Logger

	mu   sync.Mutex
	read map[string]bool    // partitions whose keys are in keys
	keys *extract.DigestSet // committed keys of the partitions read
}

// NewPartitionedParquet is the Parquet output over sink, writing to dir,
// whose Holds reads the committed keys of each partition partition names
// for an item when it first meets it. Call the returned close when the run
// is done with the output.
func NewPartitionedParquet[R any](sink *parquet.Sink[R], dir string, partition func(pipeline.Item) (string, error),
	log zerolog.Logger) (pipeline.Output[R], func(context.Context) error, error) {
	keys, err := extract.NewDigestSet(0)
	if err != nil {
		return nil, nil, fmt.Errorf("hold committed keys: %w", err)
	}
	p := &partitionedResume[R]{Parquet: Parquet[R]{sink}, dir: dir, partition: partition, log: log, read: map[string]bool{}, keys: keys}
	return p, func(context.Context) error { return keys.Close() }, nil
}

func (p *partitionedResume[R]) Holds(ctx context.Context, items []pipeline.Item) ([]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	held := make([]bool, len(items))
	for i, it := range items {
		part, err := p.partition(it)
		if err != nil {
			return nil, err
		}
		if !p.read[part] {
			st, err := parquet.PartitionKeys(ctx, p.dir, part, p.keys)
			if err != nil {
				return nil, err
			}
			p.read[part] = true
			if st.Files > 0 {
				p.log.Info().Str("dir", p.dir).Str("partition", part).Int("files", st.Files).Int("rows_read", st.Rows).
					Msg("resuming: read the partition's committed keys; calls already committed there are not written again")
			}
		}
		held[i] = p.keys.Has(it.Key.Digest())
	}
	return held, nil
}

// Warehouse is the PostgreSQL output: rows upserted into the table, in one
// transaction with the ledgers that live in the warehouse.
type Warehouse[R any] struct {
	Sink upserter[R] // *postgres.Sink
	Log  zerolog.Logger
	// RetryUnreachable, when positive, makes a commit that could not reach
	// the database (nothing of it was sent) try again with backoff for up
	// to this long, instead of ending the run at once: a follower outlives
	// a database restart. Its transaction (upsert, snapshots, queue
	// settlement) is idempotent.
	RetryUnreachable time.Duration
}

// upserter commits rows and, in the same transaction, inTx.
type upserter[R any] interface {
	Commit(ctx context.Context, rows []R, inTx func(context.Context, pgx.Tx) error) (postgres.UpsertStats, error)
}

func (Warehouse[R]) Name() string { return "postgres" }

func (w Warehouse[R]) Commit(ctx context.Context, rows []R) (int, error) {
	return 0, w.CommitWith(ctx, rows, nil)
}

// commitAttempts is how many times one batch's transaction runs when it
// meets deadlocks or serialization failures.
const commitAttempts = 4

// CommitWith upserts rows and runs also in the same transaction. A
// transaction that conflicted (a deadlock or serialization failure:
// PostgreSQL rolled it back whole) runs again, also included.
func (w Warehouse[R]) CommitWith(ctx context.Context, rows []R, also func(ctx context.Context, tx any) error) error {
	var inTx func(context.Context, pgx.Tx) error
	if also != nil {
		inTx = func(ctx context.Context, tx pgx.Tx) error { return also(ctx, tx) }
	}
	var unreachableSince time.Time
	for attempt := 1; ; attempt++ {
		_, err := w.Sink.Commit(ctx, rows, inTx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		wait := time.Duration(1+rand.N(2<<min(attempt, 6))) * 25 * time.Millisecond
		switch {
		case isConflict(err) && attempt < commitAttempts:
			w.Log.Warn().Err(err).Int("attempt", attempt).Msg("commit conflicted with another transaction; retrying it")
		case w.RetryUnreachable > 0 && isUnreachable(err):
			if unreachableSince.IsZero() {
				unreachableSince = time.Now()
			}
			if time.Since(unreachableSince) >= w.RetryUnreachable {
				return fmt.Errorf("the database was unreachable for %s: %w", w.RetryUnreachable, err)
			}
			wait = min(time.Second<<min(attempt-1, 3), 5*time.Second)
			w.Log.Warn().Err(err).Time("unreachable_since", unreachableSince).Dur("retry_in", wait).Msg("commit could not reach the database; retrying it")
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// isUnreachable reports an error that happened before anything of the
// transaction reached the server (a refused or failed connection).
func isUnreachable(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}

// isConflict reports a deadlock or serialization failure (SQLSTATE 40P01,
// 40001): running the transaction again is the documented remedy. Other
// errors are not retried: a connection lost during COMMIT leaves its outcome
// unknown.
func isConflict(err error) bool {
	var st interface{ SQLState() string }
	if !errors.As(err, &st) {
		return false
	}
	return st.SQLState() == "40P01" || st.SQLState() == "40001"
}

// warehouseResume is the warehouse output that looks up which keys the
// table already holds, so a rerun does not ask them again.
type warehouseResume[R any] struct {
	Warehouse[R]
	table *postgres.Table[R]
	db    *pgxpool.Pool
}

func (w warehouseResume[R]) Holds(ctx context.Context, items []pipeline.Item) ([]bool, error) {
	keys := make([]extract.Key, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	found, err := w.table.ExistingKeys(ctx, w.db, keys)
	if err != nil {
		return nil, err
	}
	held := make([]bool, len(keys))
	for i, k := range keys {
		_, held[i] = found[k.Digest()]
	}
	return held, nil
}

// NewWarehouse is the warehouse output over sink; with resume it skips the
// keys table already holds (off for the queue, whose rows are asked again on
// purpose, and with --refresh). retryUnreachable is Warehouse.RetryUnreachable.
func NewWarehouse[R any](sink *postgres.Sink[R], table *postgres.Table[R], db *pgxpool.Pool, resume bool, retryUnreachable time.Duration, log zerolog.Logger) pipeline.Output[R] {
	w := Warehouse[R]{Sink: sink, Log: log, RetryUnreachable: retryUnreachable}
	if !resume {
		return w
	}
	return warehouseResume[R]{w, table, db}
}
