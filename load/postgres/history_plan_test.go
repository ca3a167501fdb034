package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/internal/pgtest"
)

// The history statement must find each staged row's stored row by primary
// key. As a join, the planner hashed the whole of cms.call_info on every
// commit: a cost that grows with the warehouse, not with the batch.
func TestHistoryLooksUpStoredRowsByKey(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Migrated(t)
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(t.Context()) }()
	if _, err := tx.Exec(t.Context(), CallInfo.createStageSQL); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(t.Context(), "EXPLAIN "+CallInfo.historySQL)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "Index Scan using call_info_pkey") || strings.Contains(plan, "Join") {
		t.Errorf("the history statement does not look stored rows up by key:\n%s", plan)
	}
}
