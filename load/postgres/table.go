package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/extract"
)

// Table is the warehouse shape of one row type R, the table cms.<Name>,
// generated from its declaration (rows_gen.go: CallInfo, CallDetail,
// CallRecord). Its statements are derived from the column list once, so
// they cannot drift from the row.
type Table[R any] struct {
	// Name is the table in schema cms.
	Name string

	columns   []string // the row's columns, then raw when stored: what COPY writes
	values    func(dst []any, r *R) []any
	key       func(r *R) extract.Key
	fetchedAt func(r *R) time.Time

	createStageSQL, upsertSQL string
	// historySQL appends the incoming rows that changed state to the
	// history table, before the upsert ("" without one).
	historySQL string
}

// maintained is a warehouse column the upsert maintains itself.
type maintained struct {
	name     string
	onInsert string // SQL expression over the staged row
	onUpdate string // SQL expression in DO UPDATE SET; "" keeps the stored value
}

// newTable builds a table's statements. The staging table holds one row per
// key (see latestPerKey), so the upsert needs no DISTINCT ON sort.
func newTable[R any](name string, rowColumns []string, raw bool, kept []maintained,
	values func(dst []any, r *R) []any, key func(r *R) extract.Key, fetchedAt func(r *R) time.Time) *Table[R] {
	t := &Table[R]{Name: name, columns: slices.Clone(rowColumns), values: values, key: key, fetchedAt: fetchedAt}
	if raw {
		t.columns = append(t.columns, "raw")
	}
	stage := name + "_stage"
	t.createStageSQL = "CREATE TEMP TABLE " + stage + " ON COMMIT DROP AS SELECT " +
		strings.Join(t.columns, ", ") + " FROM cms." + name + " WITH NO DATA"

	insertCols, selectExprs := slices.Clone(t.columns), slices.Clone(t.columns)
	var set, stored, incoming []string
	for _, c := range t.columns {
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
	for _, m := range kept {
		insertCols = append(insertCols, m.name)
		selectExprs = append(selectExprs, m.onInsert)
		if m.onUpdate != "" {
			set = append(set, m.name+" = "+m.onUpdate)
			stored = append(stored, "t."+m.name)
			incoming = append(incoming, m.onUpdate)
		}
	}
	// t.xmax = 0 holds for a row this statement inserted, not for one it
	// updated: the usual way to tell the two apart in RETURNING.
	t.upsertSQL = `WITH up AS (
	INSERT INTO cms.` + name + ` AS t (` + strings.Join(insertCols, ", ") + `)
	SELECT ` + strings.Join(selectExprs, ", ") + ` FROM ` + stage + `
	ORDER BY cc_id, vdn, call_id -- rows locked in key order: concurrent commits cannot deadlock
	ON CONFLICT (cc_id, vdn, call_id) DO UPDATE SET ` + strings.Join(set, ", ") + `
	WHERE t.fetched_at <= EXCLUDED.fetched_at
	  AND (` + strings.Join(stored, ", ") + `) IS DISTINCT FROM (` + strings.Join(incoming, ", ") + `)
	RETURNING t.xmax = 0 AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`
	return t
}

// history is a table the upsert appends the changes of state to (see
// recordspec.History).
type history struct {
	table, at string
	columns   []string
	changes   []string
}

// withHistory makes the upsert append, in its transaction and before it
// changes the stored rows, one row to h.table for each incoming row that is
// newer than the stored one and differs from it in h.changes (a new key
// included). Of several rows of one key in a batch only the latest is
// staged (see latestPerKey), so its state is compared with the stored one:
// the queue never puts two answers of one call in a batch. The history's
// key is (key, at): a batch written again appends nothing twice.
func (t *Table[R]) withHistory(h history) *Table[R] {
	cols := append([]string{"cc_id", "vdn", "call_id", h.at}, h.columns...)
	exprs := []string{"s.cc_id", "s.vdn", "s.call_id", "s.fetched_at"}
	for _, c := range h.columns {
		exprs = append(exprs, "s."+c)
	}
	var stored, incoming []string
	for _, c := range h.changes {
		stored, incoming = append(stored, "t."+c), append(incoming, "s."+c)
	}
	// The stored row is looked up by a scalar subquery, once per staged row
	// by primary key: as a join, the planner hashed the whole stored table
	// for every commit, a cost that grows with the warehouse, not the batch.
	t.historySQL = `INSERT INTO cms.` + h.table + ` (` + strings.Join(cols, ", ") + `)
	SELECT ` + strings.Join(exprs, ", ") + `
	FROM ` + t.Name + `_stage s
	WHERE coalesce((SELECT t.fetched_at < s.fetched_at AND (` + strings.Join(stored, ", ") + `) IS DISTINCT FROM (` + strings.Join(incoming, ", ") + `)
	                FROM cms.` + t.Name + ` t
	                WHERE t.cc_id = s.cc_id AND t.vdn = s.vdn AND t.call_id = s.call_id), true)
	ON CONFLICT DO NOTHING`
	return t
}

// commitWorkMem is the sort memory of a commit's transaction: the upsert
// sorts the staged batch by key (its lock order), and at PostgreSQL's
// default of 4MB a batch of 50,000 rows spills to disk (about a fifth of the
// commit's time). SET LOCAL ends with the transaction.
const commitWorkMem = "64MB"

func (t *Table[R]) upsert(ctx context.Context, tx pgx.Tx, rows []R) (UpsertStats, error) {
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '"+commitWorkMem+"'"); err != nil {
		return UpsertStats{}, fmt.Errorf("set the commit's work_mem: %w", err)
	}
	if _, err := tx.Exec(ctx, t.createStageSQL); err != nil {
		return UpsertStats{}, fmt.Errorf("create staging table: %w", err)
	}
	src := &rowSource[R]{t: t, rows: rows, pick: t.latestPerKey(rows), pos: -1}
	staged, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name + "_stage"}, t.columns, src)
	if err != nil {
		return UpsertStats{}, fmt.Errorf("copy rows to staging table: %w", err)
	}
	var snapshots int64
	if t.historySQL != "" {
		tag, err := tx.Exec(ctx, t.historySQL)
		if err != nil {
			return UpsertStats{}, fmt.Errorf("append changes of %s to its history: %w", t.Name, err)
		}
		snapshots = tag.RowsAffected()
	}
	var inserted, updated int
	if err := tx.QueryRow(ctx, t.upsertSQL).Scan(&inserted, &updated); err != nil {
		return UpsertStats{}, fmt.Errorf("upsert %s: %w", t.Name, err)
	}
	return UpsertStats{Inserted: inserted, Updated: updated, Unchanged: int(staged) - inserted - updated, Snapshots: int(snapshots)}, nil
}

// latestPerKey returns nil when every row has its own key, the usual case.
// Otherwise it returns the indexes of the rows to write, in order: of several
// rows with one key, the one fetched last, the later in rows on a tie.
// ON CONFLICT cannot touch one row twice in a statement, and choosing here
// spares the database a sort of the whole batch.
func (t *Table[R]) latestPerKey(rows []R) []int {
	winner := make(map[extract.Key]int, len(rows))
	dup := false
	for i := range rows {
		k := t.key(&rows[i])
		if j, seen := winner[k]; seen {
			dup = true
			if t.fetchedAt(&rows[j]).After(t.fetchedAt(&rows[i])) {
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
type rowSource[R any] struct {
	t    *Table[R]
	rows []R
	pick []int
	pos  int
	vals []any
}

func (s *rowSource[R]) Next() bool {
	s.pos++
	if s.pick != nil {
		return s.pos < len(s.pick)
	}
	return s.pos < len(s.rows)
}

func (s *rowSource[R]) Values() ([]any, error) {
	i := s.pos
	if s.pick != nil {
		i = s.pick[s.pos]
	}
	// COPY encodes a row before asking for the next, so one slice serves all.
	s.vals = s.t.values(s.vals[:0], &s.rows[i])
	return s.vals, nil
}

func (s *rowSource[R]) Err() error { return nil }
