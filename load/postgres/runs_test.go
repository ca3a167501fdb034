package postgres_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/load"
	"github.com/cmsetl/cms-etl/load/postgres"
)

func TestRecordFailures(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	failures := []load.Failure{
		{Line: 12, Key: extract.Key{CCID: 1, VDN: 2, CallID: "1659513159000-1"}, Raw: [3]string{"1", "2", "1659513159000-1"},
			Outcome: "failed", Reason: "transient: HTTP 503", ResultCode: "0100001", HTTPStatus: 503, Attempts: 5},
		{Line: 13, Key: extract.Key{VDN: 2, CallID: "x"}, Raw: [3]string{"abc", "2", "x"},
			Outcome: "rejected", Reason: `ccId "abc": not a number`},
		{Key: extract.Key{CCID: 3, VDN: 4, CallID: "1-2"}, Outcome: "failed", Reason: "no response", Attempts: 1},
		{Line: 14, Raw: [3]string{"1\x00", "\xff", "9-9"}, Outcome: "rejected", Reason: "vdn \"\xff\": not an integer\x00"},
	}
	if err := postgres.RecordFailures(t.Context(), pool, "run-1", failures); err != nil {
		t.Fatal(err)
	}
	if err := postgres.RecordFailures(t.Context(), pool, "run-1", nil); err != nil {
		t.Fatal(err)
	}
	if err := postgres.RecordFailures(t.Context(), pool, "run-1", []load.Failure{{Outcome: "lost"}}); err == nil {
		t.Fatal("an unknown outcome was accepted")
	}

	type stored struct {
		RunID                      string
		Line                       *int64
		CCID, VDN                  *int32
		CallID                     *string
		RawCCID, RawVDN, RawCallID *string
		Outcome                    string
		Reason, ResultCode         *string
		HTTPStatus                 *int32
		Attempts                   int32
		Recent                     bool
	}
	rows, err := pool.Query(t.Context(), `
		SELECT run_id, line, cc_id, vdn, call_id, raw_cc_id, raw_vdn, raw_call_id, outcome, reason,
		       result_code, http_status, attempts, at > now() - interval '1 hour'
		FROM cms.call_failure ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[stored])
	if err != nil {
		t.Fatal(err)
	}
	want := []stored{
		{"run-1", ptr(int64(12)), ptr(int32(1)), ptr(int32(2)), ptr("1659513159000-1"), ptr("1"), ptr("2"), ptr("1659513159000-1"),
			"failed", ptr("transient: HTTP 503"), ptr("0100001"), ptr(int32(503)), 5, true},
		{"run-1", ptr(int64(13)), nil, nil, nil, ptr("abc"), ptr("2"), ptr("x"),
			"rejected", ptr(`ccId "abc": not a number`), nil, nil, 0, true},
		{"run-1", nil, ptr(int32(3)), ptr(int32(4)), ptr("1-2"), nil, nil, nil,
			"failed", ptr("no response"), nil, nil, 1, true},
		{"run-1", ptr(int64(14)), nil, nil, nil, ptr("1"), ptr("\uFFFD"), ptr("9-9"),
			"rejected", ptr("vdn \"\uFFFD\": not an integer"), nil, nil, 0, true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("call_failure rows:\n got %s\nwant %s", jsonOf(t, got), jsonOf(t, want))
	}
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunRecords(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	start := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	rec := postgres.RunRecord{ID: "run-1", Host: "etl1", Version: "v1.2.3", Input: "calls.csv", Outputs: "postgres,parquet:/data",
		StartedAt: start, ConfiguredRate: 20}

	type stored struct {
		Host, Status                 string
		StartedAt                    time.Time
		FinishedAt                   *time.Time
		RowsRead, Loaded, NoData     int64
		Failed, Rejected, Duplicate  int64
		ConfiguredRate, AchievedRate float64
		Summary                      map[string]any
	}
	read := func(id string) stored {
		t.Helper()
		rows, err := pool.Query(t.Context(), `
			SELECT coalesce(host, ''), status, started_at, finished_at, rows_read, loaded, no_data, failed, rejected, duplicate,
			       configured_rate, achieved_rate, summary
			FROM cms.etl_run WHERE id = $1`, id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[stored])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	if err := postgres.StartRun(t.Context(), pool, rec); err != nil {
		t.Fatal(err)
	}
	if got := read("run-1"); got.Status != "running" || got.FinishedAt != nil || !got.StartedAt.Equal(start) || got.Host != "etl1" {
		t.Fatalf("after StartRun: %+v", got)
	}
	if err := postgres.StartRun(t.Context(), pool, rec); err == nil {
		t.Fatal("a second StartRun with the same ID succeeded")
	}

	end := start.Add(time.Hour)
	rec.FinishedAt, rec.Status = end, "partial"
	rec.RowsRead, rec.Loaded, rec.NoData, rec.Failed, rec.Rejected, rec.Duplicate = 10, 5, 2, 1, 1, 1
	rec.AchievedRate = 19.5
	rec.Summary = map[string]any{"unknown_codes": map[string]any{"media_type": map[string]int{"99": 2}}}
	if err := postgres.FinishRun(t.Context(), pool, rec); err != nil {
		t.Fatal(err)
	}
	want := stored{Host: "etl1", Status: "partial", StartedAt: start, FinishedAt: &end,
		RowsRead: 10, Loaded: 5, NoData: 2, Failed: 1, Rejected: 1, Duplicate: 1, ConfiguredRate: 20, AchievedRate: 19.5,
		Summary: map[string]any{"unknown_codes": map[string]any{"media_type": map[string]any{"99": float64(2)}}}}
	got := read("run-1")
	got.StartedAt, got.FinishedAt = got.StartedAt.UTC(), ptr(got.FinishedAt.UTC())
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after FinishRun:\n got %+v\nwant %+v", got, want)
	}

	// A run whose start was never recorded is still recorded at the end.
	if err := postgres.FinishRun(t.Context(), pool, postgres.RunRecord{ID: "run-2", StartedAt: start, FinishedAt: end, Status: "aborted"}); err != nil {
		t.Fatal(err)
	}
	if got := read("run-2"); got.Status != "aborted" || got.Summary != nil {
		t.Fatalf("run-2: %+v", got)
	}

	for _, bad := range []postgres.RunRecord{{StartedAt: start}, {ID: "run-3"}, {ID: "run-4", StartedAt: start, Status: "fine"}} {
		if err := postgres.FinishRun(t.Context(), pool, bad); err == nil {
			t.Errorf("FinishRun(%+v) succeeded", bad)
		}
	}
}

// Issue 9, defect 5: rows of runs killed with -9 or cut off by a database
// restart stayed 'running' forever.
func TestRunLockAndAbandonGoneRuns(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	start := time.Now().Add(-time.Hour)
	cfg := pool.Config().ConnConfig
	alive, err := postgres.LockRun(t.Context(), cfg, "alive")
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Release(t.Context())
	for _, id := range []string{"alive", "gone", "done"} {
		if err := postgres.StartRun(t.Context(), pool, postgres.RunRecord{ID: id, Host: "h-" + id, StartedAt: start}); err != nil {
			t.Fatal(err)
		}
	}
	if err := postgres.FinishRun(t.Context(), pool, postgres.RunRecord{ID: "done", StartedAt: start, FinishedAt: start.Add(time.Minute), Status: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.LockRun(t.Context(), cfg, "alive"); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Fatalf("a second lock on a live run's id: %v", err)
	}

	status := func(id string) (string, bool) {
		t.Helper()
		var s string
		var finished bool
		if err := pool.QueryRow(t.Context(), "SELECT status, finished_at IS NOT NULL FROM cms.etl_run WHERE id = $1", id).Scan(&s, &finished); err != nil {
			t.Fatal(err)
		}
		return s, finished
	}
	gone, err := postgres.AbandonGoneRuns(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 1 || gone[0].ID != "gone" || gone[0].Host != "h-gone" || !gone[0].StartedAt.Equal(start.Truncate(time.Microsecond)) {
		t.Fatalf("abandoned %+v, want only run gone", gone)
	}
	for id, want := range map[string]string{"alive": "running", "gone": "abandoned", "done": "succeeded"} {
		if s, finished := status(id); s != want || finished != (want != "running") {
			t.Errorf("run %s: %s (finished %v), want %s", id, s, finished, want)
		}
	}
	// The pool does not keep the lock it checked with.
	relock, err := postgres.LockRun(t.Context(), cfg, "gone")
	if err != nil {
		t.Fatalf("lock of an abandoned run's id after the check: %v", err)
	}
	relock.Release(t.Context())

	if err := alive.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := alive.Release(t.Context()); err == nil {
		t.Error("a second Release succeeded")
	}
	if gone, err := postgres.AbandonGoneRuns(t.Context(), pool); err != nil || len(gone) != 1 || gone[0].ID != "alive" {
		t.Fatalf("after its lock was released: %+v, %v; want run alive abandoned", gone, err)
	}
	// A run marked abandoned by mistake (its binary predates the lock)
	// corrects its row when it finishes.
	if err := postgres.FinishRun(t.Context(), pool, postgres.RunRecord{ID: "alive", StartedAt: start, FinishedAt: time.Now(), Status: "partial"}); err != nil {
		t.Fatal(err)
	}
	if s, _ := status("alive"); s != "partial" {
		t.Errorf("run alive after FinishRun: %s, want partial", s)
	}
}

// Issue 9, defect 5: a run that cannot write its final row (the database
// restarting) retries instead of leaving it 'running'.
func TestFinishRunRetriesWhileTheDatabaseIsAway(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	start := time.Now()
	if err := postgres.StartRun(t.Context(), pool, postgres.RunRecord{ID: "r", StartedAt: start}); err != nil {
		t.Fatal(err)
	}
	adminCfg := pool.Config().ConnConfig.Copy()
	adminCfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(t.Context(), adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(t.Context())
	// Like a restart: every session of the database ends, new ones are refused.
	if _, err := admin.Exec(t.Context(), "ALTER DATABASE "+pool.Config().ConnConfig.Database+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", pool.Config().ConnConfig.Database); err != nil {
		t.Fatal(err)
	}
	back := make(chan error, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_, err := admin.Exec(context.WithoutCancel(t.Context()), "ALTER DATABASE "+pool.Config().ConnConfig.Database+" ALLOW_CONNECTIONS true")
		back <- err
	}()
	defer func() {
		if err := <-back; err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = postgres.FinishRun(ctx, pool, postgres.RunRecord{ID: "r", StartedAt: start, FinishedAt: time.Now(), Status: "succeeded"})
	if err != nil {
		t.Fatalf("FinishRun while the database was away for 1.5 s: %v", err)
	}
	var status string
	if err := pool.QueryRow(t.Context(), "SELECT status FROM cms.etl_run WHERE id = 'r'").Scan(&status); err != nil || status != "succeeded" {
		t.Fatalf("status %q, %v; want succeeded", status, err)
	}
}
