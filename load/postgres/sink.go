// Package postgres writes the job's output to the warehouse: call rows into
// cms.call_info (an idempotent bulk upsert), rows that failed into
// cms.call_failure, and one cms.etl_run row per run. The schema is created
// by package migrations.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/transform"
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

// Sink upserts call rows into cms.call_info. It is safe for concurrent use.
type Sink struct {
	pool *pgxpool.Pool
	log  zerolog.Logger
}

// NewSink returns a Sink writing through cfg.Pool.
func NewSink(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink{pool: cfg.Pool, log: cfg.Logger}, nil
}

// UpsertStats counts what a Commit did with its distinct keys. Unchanged
// rows were left as stored: their data equalled the stored data, or the
// stored row came from a later fetch.
type UpsertStats struct {
	Inserted, Updated, Unchanged int
}

const stageTable = "call_info_stage"

var (
	// stageColumns are the columns copied into the staging table: the row's
	// columns and raw.
	stageColumns = append(append([]string{}, transform.Columns...), "raw")

	createStageSQL = "CREATE TEMP TABLE " + stageTable + " ON COMMIT DROP AS SELECT " +
		strings.Join(stageColumns, ", ") + " FROM cms.call_info WITH NO DATA"

	upsertSQL = buildUpsertSQL()
)

// buildUpsertSQL derives the upsert from transform.Columns so the statement
// cannot drift from the row. The staging table holds one row per key (see
// latestPerKey), so no DISTINCT ON sort is needed.
func buildUpsertSQL() string {
	cols := strings.Join(transform.Columns, ", ")
	var set, stored, incoming []string
	for _, c := range stageColumns {
		switch c {
		case "cc_id", "vdn", "call_id":
			continue
		}
		set = append(set, c+" = EXCLUDED."+c)
		switch c {
		case "fetched_at", "run_id":
			// Bookkeeping, not data: a re-fetch of the same data is no change.
			continue
		}
		stored = append(stored, "t."+c)
		incoming = append(incoming, "EXCLUDED."+c)
	}
	// t.xmax = 0 holds for a row this statement inserted, not for one it
	// updated: the usual way to tell the two apart in RETURNING.
	return `WITH up AS (
	INSERT INTO cms.call_info AS t (` + cols + `, raw, first_fetched_at)
	SELECT ` + cols + `, raw, fetched_at FROM ` + stageTable + `
	ON CONFLICT (cc_id, vdn, call_id) DO UPDATE SET ` + strings.Join(set, ", ") + `
	WHERE t.fetched_at <= EXCLUDED.fetched_at
	  AND (` + strings.Join(stored, ", ") + `) IS DISTINCT FROM (` + strings.Join(incoming, ", ") + `)
	RETURNING t.xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`
}

// Commit upserts rows into cms.call_info and then runs inTx (if not nil) in
// the same transaction, so work inTx records (queue rows marked done) commits
// exactly when the rows do. Of several rows with one key, the one fetched
// last wins (the later in rows on a tie). first_fetched_at is set on insert
// only. When inTx or anything else fails nothing is written. With no rows,
// only inTx runs.
func (s *Sink) Commit(ctx context.Context, rows []transform.Row, inTx func(ctx context.Context, tx pgx.Tx) error) (UpsertStats, error) {
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
			if stats, err = upsert(ctx, tx, rows); err != nil {
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
		Int("unchanged", stats.Unchanged).Dur("took", time.Since(start)).Msg("committed rows to postgres")
	return stats, nil
}

func upsert(ctx context.Context, tx pgx.Tx, rows []transform.Row) (UpsertStats, error) {
	if _, err := tx.Exec(ctx, createStageSQL); err != nil {
		return UpsertStats{}, fmt.Errorf("create staging table: %w", err)
	}
	src := &rowSource{rows: rows, pick: latestPerKey(rows), pos: -1}
	staged, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable}, stageColumns, src)
	if err != nil {
		return UpsertStats{}, fmt.Errorf("copy rows to staging table: %w", err)
	}
	var inserted, updated int
	if err := tx.QueryRow(ctx, upsertSQL).Scan(&inserted, &updated); err != nil {
		return UpsertStats{}, fmt.Errorf("upsert call_info: %w", err)
	}
	return UpsertStats{Inserted: inserted, Updated: updated, Unchanged: int(staged) - inserted - updated}, nil
}

type rowKey struct {
	ccID, vdn int32
	callID    string
}

// latestPerKey returns nil when every row has its own key, the usual case.
// Otherwise it returns the indexes of the rows to write, in order: of several
// rows with one key, the one fetched last, the later in rows on a tie.
// ON CONFLICT cannot touch one row twice in a statement, and choosing here
// spares the database a sort of the whole batch.
func latestPerKey(rows []transform.Row) []int {
	winner := make(map[rowKey]int, len(rows))
	dup := false
	for i := range rows {
		r := &rows[i]
		k := rowKey{r.CCID, r.VDN, r.CallID}
		if j, seen := winner[k]; seen {
			dup = true
			if rows[j].FetchedAt.After(r.FetchedAt) {
				continue
			}
		}
		winner[k] = i
	}
	if !dup {
		return nil
	}
	pick := make([]int, 0, len(winner))
	for _, i := range winner {
		pick = append(pick, i)
	}
	slices.Sort(pick)
	return pick
}

// rowSource feeds rows (those in pick, when not nil) to COPY without
// building all value slices up front.
type rowSource struct {
	rows []transform.Row
	pick []int
	pos  int
	vals []any
}

func (s *rowSource) Next() bool {
	s.pos++
	if s.pick != nil {
		return s.pos < len(s.pick)
	}
	return s.pos < len(s.rows)
}

func (s *rowSource) Values() ([]any, error) {
	i := s.pos
	if s.pick != nil {
		i = s.pick[s.pos]
	}
	// COPY encodes a row before asking for the next, so one slice serves all.
	s.vals = appendRowValues(s.vals[:0], &s.rows[i])
	return s.vals, nil
}

func (s *rowSource) Err() error { return nil }
