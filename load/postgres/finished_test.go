package postgres_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/transform"
)

// TestFinishedCallTables upserts CDR and listed-call rows: typed columns
// (boolean direction, timestamps, labels) round-trip, a rerun changes
// nothing, a later fetch with new data updates the row and an older one is
// ignored.
func TestFinishedCallTables(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)

	detail := func(fetched time.Time, callSeconds int64) transform.DetailRow {
		return transform.DetailRow{
			CCID: 1, VDN: 25, CallID: "1762523104-538062", IsCallIn: true, CallStartedAt: ptr(t0),
			CallerNo: ptr("13800000000"), CallType: ptr(int32(0)), CallTypeLabel: ptr("normal_inbound"),
			AgentID: ptr(int64(1001)), CallSeconds: ptr(callSeconds), ReleaseCause: ptr(int32(16)),
			ReleaseCauseLabel: ptr("unknown"), FetchedAt: fetched, RunID: "cdr-1",
			Raw: json.RawMessage(`{"callTime":` + strconv.FormatInt(callSeconds, 10) + `}`),
		}
	}
	ds, err := postgres.NewSink(postgres.Config{Pool: pool}, postgres.CallDetail)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		rows []transform.DetailRow
		want postgres.UpsertStats
		call int64
	}{
		{[]transform.DetailRow{detail(t1, 95)}, postgres.UpsertStats{Inserted: 1}, 95},
		{[]transform.DetailRow{detail(t1, 95)}, postgres.UpsertStats{Unchanged: 1}, 95},
		{[]transform.DetailRow{detail(t2, 96)}, postgres.UpsertStats{Updated: 1}, 96},
		{[]transform.DetailRow{detail(t0, 1)}, postgres.UpsertStats{Unchanged: 1}, 96},
	}
	for i, st := range steps {
		got, err := ds.Commit(t.Context(), st.rows, nil)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got != st.want {
			t.Errorf("step %d: stats %+v, want %+v", i, got, st.want)
		}
		var (
			in    bool
			secs  int64
			label string
			start time.Time
		)
		err = pool.QueryRow(t.Context(), `SELECT is_call_in, call_seconds, release_cause_label, call_started_at
			FROM cms.call_detail WHERE cc_id = 1 AND vdn = 25 AND call_id = '1762523104-538062'`).Scan(&in, &secs, &label, &start)
		if err != nil {
			t.Fatal(err)
		}
		if !in || secs != st.call || label != "unknown" || !start.Equal(t0) {
			t.Errorf("step %d: stored is_call_in=%v call_seconds=%d label=%s started=%v", i, in, secs, label, start)
		}
	}

	rs, err := postgres.NewSink(postgres.Config{Pool: pool}, postgres.CallRecord)
	if err != nil {
		t.Fatal(err)
	}
	rec := transform.CallRecordRow{CCID: 1, VDN: 25, CallID: "1762523104-538062", IsCallIn: false,
		WaitBegin: ptr(t0), CallEnd: ptr(t1), LeaveReason: ptr(int32(89)), LeaveReasonLabel: ptr("user_hung_up_before_answer"),
		FetchedAt: t1, RunID: "discover-1"}
	if got, err := rs.Commit(t.Context(), []transform.CallRecordRow{rec, rec}, nil); err != nil || got != (postgres.UpsertStats{Inserted: 1}) {
		t.Fatalf("call_record commit: %+v, %v", got, err)
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM cms.call_record r JOIN cms.call_detail d USING (cc_id, vdn, call_id)
		JOIN cms.leave_reason l ON l.code = r.leave_reason WHERE l.label = r.leave_reason_label AND NOT r.is_call_in`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("joined rows = %d, want 1", n)
	}
	found, err := postgres.CallRecord.ExistingKeys(t.Context(), pool, []extract.Key{{CCID: 1, VDN: 25, CallID: "1762523104-538062"}, {CCID: 1, VDN: 26, CallID: "1-1"}})
	if err != nil || len(found) != 1 {
		t.Fatalf("ExistingKeys = %v, %v; want one key", found, err)
	}
}
