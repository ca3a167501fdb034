package postgres_test

import (
	"encoding/json"
	"reflect"
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
