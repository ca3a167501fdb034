// Package postgres writes the job's output to the warehouse: call rows into
// cms.call_info (an idempotent bulk upsert), rows that failed into
// cms.call_failure, and one cms.etl_run row per run. The schema is created
// by package migrations.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
)

// Querier is what the functions that take a database need: satisfied by
// *pgxpool.Pool, *pgx.Conn and pgx.Tx.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// Config configures a Sink.
type Config struct {
	// Pool is the warehouse. Required. Each Commit holds one connection for
	// its transaction, so size the pool for the number of concurrent commits.
	Pool *pgxpool.Pool
	// Logger receives one debug line per commit. Zero value: discard.
	Logger zerolog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Pool == nil {
		return errors.New("postgres sink config: Pool is required")
	}
	return nil
}

// Sink upserts rows of one table (see Table) into the warehouse. It is safe
// for concurrent use.
type Sink[R any] struct {
	table *Table[R]
	pool  *pgxpool.Pool
	log   zerolog.Logger
}

// NewSink returns a Sink writing t's rows through cfg.Pool.
func NewSink[R any](cfg Config, t *Table[R]) (*Sink[R], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink[R]{table: t, pool: cfg.Pool, log: cfg.Logger}, nil
}

// UpsertStats counts what a Commit did with its distinct keys. Unchanged
// rows were left as stored: their data equalled the stored data, or the
// stored row came from a later fetch.
type UpsertStats struct {
	Inserted, Updated, Unchanged int
	// Snapshots counts the rows appended to the table's history (a change
	// of a call's state; see recordspec.History).
	Snapshots int
}

// Commit upserts rows into the table and then runs inTx (if not nil) in the
// same transaction, so work inTx records (queue rows marked done) commits
// exactly when the rows do. Of several rows with one key, the one fetched
// last wins (the later in rows on a tie); a stored row fetched later than an
// incoming one, or holding the same data, is left as it is. Maintained
// columns (first_fetched_at) follow the table's rules. When inTx or anything
// else fails nothing is written. With no rows, only inTx runs.
func (s *Sink[R]) Commit(ctx context.Context, rows []R, inTx func(ctx context.Context, tx pgx.Tx) error) (UpsertStats, error) {
	if len(rows) == 0 && inTx == nil {
		return UpsertStats{}, nil
	}
	start := time.Now()
	var stats UpsertStats
	// The temp table lives on one connection, so the whole commit runs in
	// one transaction on one connection.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stats = UpsertStats{}
		if len(rows) > 0 {
			var err error
			if stats, err = s.table.upsert(ctx, tx, rows); err != nil {
				return err
			}
		}
		if inTx != nil {
			return inTx(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return UpsertStats{}, fmt.Errorf("commit %d rows: %w", len(rows), err)
	}
	s.log.Debug().Int("rows", len(rows)).Int("inserted", stats.Inserted).Int("updated", stats.Updated).
		Int("unchanged", stats.Unchanged).Int("snapshots", stats.Snapshots).Dur("took", time.Since(start)).Str("table", s.table.Name).Msg("committed rows to postgres")
	return stats, nil
}
