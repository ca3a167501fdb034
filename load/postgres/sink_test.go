package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/internal/pgtest"
	"github.com/cmsetl/cms-etl/load/postgres"
	"github.com/cmsetl/cms-etl/transform"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup returns a pool on a fresh, migrated database.
func setup(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := pgtest.Migrated(t)
	return pool
}

func newSink(t testing.TB, pool *pgxpool.Pool) *postgres.Sink[transform.Row] {
	t.Helper()
	s, err := postgres.NewSink(postgres.Config{Pool: pool}, postgres.CallInfo)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC)

func ptr[T any](v T) *T { return &v }

// row returns a realistic row for call i; every nullable field is set.
func row(i int, fetched time.Time, runID string) transform.Row {
	callID := strconv.FormatInt(t0.UnixMilli(), 10) + "-" + strconv.Itoa(i)
	return transform.Row{
		CCID: 1, VDN: int32(1 + i%5000), CallID: callID,
		CallStartedAt: ptr(t0), EnteredAt: ptr(t0.Add(time.Second)),
		DSN: ptr(int64(i)), Handle: ptr(int64(2)), Server: ptr(int64(3)), KeyID: ptr("k" + callID),
		CallingNum: ptr("13800000000"), CalledNum: ptr("4001"), MID: ptr(int64(4)), TrunkNo: ptr(int64(5)),
		Priority: ptr(int32(6)), DeviceType: ptr(int32(2)), DeviceTypeLabel: ptr("agent"),
		DeviceNo: ptr(int64(1001)), CallSkill: ptr("defaultAudioSkill"), PartyNum: ptr(int32(2)),
		CallFeature: ptr(int32(0)), CallFeatureLabel: ptr("customer"), OrigCalledNum: ptr("4000"),
		MediaType: ptr(int32(5)), MediaTypeLabel: ptr("voice"), Place: ptr(int32(7)),
		WaitSeconds: ptr(int64(8)), TalkSeconds: ptr(int64(275)), LogonSeconds: ptr(int64(284)),
		ServiceType: ptr(int32(2)), CallInCause: ptr(int32(65535)), EnterReason: ptr(int32(0)),
		EnterReasonLabel: ptr("normal"), MediaBillType: ptr("0"),
		FetchedAt: fetched, RunID: runID,
		Raw: json.RawMessage(fmt.Sprintf(`{"time":1606115215000,"dsn":%d,"callSkill":"defaultAudioSkill","mediaBillType":0}`, i)),
	}
}

// stored reads a call back into a transform.Row (columns in Columns order,
// the same order as Row's fields) plus first_fetched_at.
func stored(t *testing.T, db postgres.Querier, k extract.Key) (transform.Row, time.Time) {
	t.Helper()
	var r transform.Row
	var raw []byte
	var first time.Time
	v := reflect.ValueOf(&r).Elem()
	dst := make([]any, 0, len(transform.Columns)+2)
	for i := range transform.Columns {
		dst = append(dst, v.Field(i).Addr().Interface())
	}
	dst = append(dst, &raw, &first)
	rows, err := db.Query(t.Context(), "SELECT "+strings.Join(transform.Columns, ", ")+
		", raw, first_fetched_at FROM cms.call_info WHERE (cc_id, vdn, call_id) = ($1, $2, $3)", k.CCID, k.VDN, k.CallID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := pgx.ForEachRow(rows, dst, func() error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d rows stored for %v", n, k)
	}
	if raw != nil {
		r.Raw = raw
	}
	return r, first
}

func key(r transform.Row) extract.Key {
	return extract.Key{CCID: int(r.CCID), VDN: int(r.VDN), CallID: r.CallID}
}

// equalRows compares rows with times by instant and raw JSON by value (jsonb
// normalizes spacing and key order).
func equalRows(t *testing.T, got, want transform.Row) {
	t.Helper()
	var gotRaw, wantRaw any
	if got.Raw != nil {
		if err := json.Unmarshal(got.Raw, &gotRaw); err != nil {
			t.Fatal(err)
		}
	}
	if want.Raw != nil {
		if err := json.Unmarshal(want.Raw, &wantRaw); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(gotRaw, wantRaw) {
		t.Errorf("raw = %s, want %s", got.Raw, want.Raw)
	}
	got.Raw, want.Raw = nil, nil
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if gt, ok := g.(*time.Time); ok && gt != nil && w.(*time.Time) != nil {
			g, w = gt.UTC(), w.(*time.Time).UTC()
		}
		if gt, ok := g.(time.Time); ok {
			g, w = gt.UTC(), w.(time.Time).UTC()
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %v, want %v", gv.Type().Field(i).Name, show(g), show(w))
		}
	}
}

func show(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		return rv.Elem().Interface()
	}
	return v
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := postgres.NewSink(postgres.Config{}, postgres.CallInfo)
	if err == nil || !strings.Contains(err.Error(), "Pool") {
		t.Fatalf("NewSink without a pool: %v, want an error naming Pool", err)
	}
}

func TestCommitRoundTrip(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sink := newSink(t, pool)
	full := row(1, t0, "run-1")
	empty := transform.Row{CCID: 2, VDN: 3, CallID: "1453723531-574", FetchedAt: t0, RunID: "run-1"}

	stats, err := sink.Commit(t.Context(), []transform.Row{full, empty}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (postgres.UpsertStats{Inserted: 2, Snapshots: 2}); stats != want {
		t.Fatalf("stats = %+v, want %+v", stats, want)
	}
	for _, want := range []transform.Row{full, empty} {
		got, first := stored(t, pool, key(want))
		equalRows(t, got, want)
		if !first.Equal(want.FetchedAt) {
			t.Errorf("first_fetched_at = %v, want the first fetch %v", first, want.FetchedAt)
		}
	}
}

// TestCommitSequence runs commits one after another on one table and checks
// the stats and the stored state after each.
func TestCommitSequence(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sink := newSink(t, pool)
	t1, t2, t3 := t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(3*time.Hour)

	changed := row(1, t2, "run-3")
	changed.TalkSeconds = ptr(int64(300))
	changed.Raw = json.RawMessage(`{"totalTalkingTimes":300}`)
	rawOnly := row(2, t2, "run-3")
	rawOnly.Raw = json.RawMessage(`{"new":"field"}`)
	olderFetch := row(1, t1, "run-4")
	olderFetch.TalkSeconds = ptr(int64(1))
	dupOld, dupNew := row(3, t2, "run-5"), row(3, t3, "run-5")
	dupNew.CallingNum = ptr("newer")
	tieFirst, tieLast := row(0, t3, "run-5"), row(0, t3, "run-5")
	tieLast.CallingNum = ptr("later in batch")

	steps := []struct {
		name  string
		rows  []transform.Row
		want  postgres.UpsertStats
		check transform.Row // stored state of this row's key afterwards
		first time.Time     // its first_fetched_at
	}{
		{"insert", []transform.Row{row(0, t0, "run-1"), row(1, t0, "run-1"), row(2, t0, "run-1")},
			postgres.UpsertStats{Inserted: 3, Snapshots: 3}, row(1, t0, "run-1"), t0},
		{"the same answer written again is unchanged", []transform.Row{row(0, t0, "run-2"), row(1, t0, "run-2"), row(2, t0, "run-2")},
			postgres.UpsertStats{Unchanged: 3}, row(1, t0, "run-1"), t0},
		// A later live answer is news (last_seen_live_at, snapshots) even
		// when the data is the same.
		{"the same data answered later updates", []transform.Row{row(0, t1, "run-2"), row(1, t1, "run-2"), row(2, t1, "run-2")},
			postgres.UpsertStats{Updated: 3}, row(1, t1, "run-2"), t0},
		{"changed data updates and keeps first_fetched_at", []transform.Row{changed, rawOnly, row(0, t2, "run-3")},
			postgres.UpsertStats{Updated: 3}, changed, t0},
		{"an older fetch does not overwrite a newer one", []transform.Row{olderFetch},
			postgres.UpsertStats{Unchanged: 1}, changed, t0},
		{"duplicate key in one batch: latest fetch wins", []transform.Row{dupNew, dupOld},
			postgres.UpsertStats{Inserted: 1, Snapshots: 1}, dupNew, t3},
		{"duplicate key fetched at the same instant: later in the batch wins", []transform.Row{tieFirst, tieLast},
			postgres.UpsertStats{Updated: 1}, tieLast, t0},
	}
	for _, st := range steps {
		stats, err := sink.Commit(t.Context(), st.rows, nil)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if stats != st.want {
			t.Errorf("%s: stats = %+v, want %+v", st.name, stats, st.want)
		}
		got, first := stored(t, pool, key(st.check))
		equalRows(t, got, st.check)
		if !first.Equal(st.first) {
			t.Errorf("%s: first_fetched_at = %v, want %v", st.name, first, st.first)
		}
	}
	got, _ := stored(t, pool, key(rawOnly))
	equalRows(t, got, rawOnly)
}

func TestCommitInTx(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sink := newSink(t, pool)
	errMarker := errors.New("queue settle failed")

	var seen int
	_, err := sink.Commit(t.Context(), []transform.Row{row(1, t0, "r"), row(2, t0, "r")}, func(ctx context.Context, tx pgx.Tx) error {
		// inTx runs after the upsert, in its transaction.
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM cms.call_info").Scan(&seen); err != nil {
			return err
		}
		return errMarker
	})
	if !errors.Is(err, errMarker) {
		t.Fatalf("Commit = %v, want the inTx error", err)
	}
	if seen != 2 {
		t.Errorf("inTx saw %d rows, want the 2 just upserted", seen)
	}
	if n := count(t, pool, "cms.call_info"); n != 0 {
		t.Fatalf("%d rows survived the failed inTx", n)
	}

	// Without rows only inTx runs, still in a transaction.
	called := false
	stats, err := sink.Commit(t.Context(), nil, func(ctx context.Context, tx pgx.Tx) error {
		called = true
		_, err := tx.Exec(ctx, "INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES (1, 1, '1-1')")
		return err
	})
	if err != nil || !called || stats != (postgres.UpsertStats{}) {
		t.Fatalf("Commit(nil rows) = %+v, %v; inTx called: %v", stats, err, called)
	}
	if n := count(t, pool, "cms.call_queue"); n != 1 {
		t.Fatalf("inTx's insert: %d rows, want 1", n)
	}
}

func count(t *testing.T, db postgres.Querier, table string) int {
	t.Helper()
	rows, err := db.Query(t.Context(), "SELECT count(*) FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestExistingKeys(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sink := newSink(t, pool)
	var rows []transform.Row
	for i := range 10 {
		rows = append(rows, row(i, t0, "r"))
	}
	if _, err := sink.Commit(t.Context(), rows, nil); err != nil {
		t.Fatal(err)
	}
	present := []extract.Key{key(rows[3]), key(rows[7])}
	keys := append([]extract.Key{
		{CCID: 1, VDN: 1, CallID: "1-1"},                // valid, absent
		{CCID: 99999, VDN: 1, CallID: rows[3].CallID},   // invalid: never looked up
		{CCID: 1, VDN: int(rows[3].VDN), CallID: "1-3"}, // absent: one field differs
	}, present...)
	got, err := postgres.CallInfo.ExistingKeys(t.Context(), pool, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := map[extract.Digest]struct{}{present[0].Digest(): {}, present[1].Digest(): {}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ExistingKeys found %d keys, want %d (%v)", len(got), len(want), present)
	}
}

// liveState is what cms.call_info says of a call's live answers.
type liveState struct {
	First, Last time.Time
	Snapshots   int
}

func live(t *testing.T, db postgres.Querier, k extract.Key) liveState {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT first_seen_live_at, last_seen_live_at, snapshots FROM cms.call_info
		WHERE (cc_id, vdn, call_id) = ($1, $2, $3)`, k.CCID, k.VDN, k.CallID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[liveState])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshotRow is one row of cms.call_snapshot.
type snapshotRow struct {
	SeenAt      time.Time
	DeviceType  int32
	DeviceNo    int64
	EnterReason int32
	Talk        int64
	RunID       string
}

func snapshots(t *testing.T, db postgres.Querier, k extract.Key) []snapshotRow {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT seen_at, device_type, device_no, enter_reason, talk_seconds, run_id
		FROM cms.call_snapshot WHERE (cc_id, vdn, call_id) = ($1, $2, $3) ORDER BY seen_at`, k.CCID, k.VDN, k.CallID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[snapshotRow])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every live answer counts (first/last seen, snapshots); an answer that moves
// the call to another device or state, the first included, is appended to
// cms.call_snapshot in the upsert's transaction; the same answer written
// twice, or an older one, changes nothing.
func TestLiveColumnsAndSnapshots(t *testing.T) {
	t.Parallel()
	pool := setup(t)
	sink := newSink(t, pool)
	at := func(d time.Duration, device, no, reason int, talk int64) transform.Row {
		r := row(1, t0.Add(d), "run-"+d.String())
		r.DeviceType, r.DeviceNo, r.EnterReason, r.TalkSeconds = ptr(int32(device)), ptr(int64(no)), ptr(int32(reason)), ptr(talk)
		return r
	}
	ivr, ivrLater := at(0, 3, 77, 0, 0), at(5*time.Second, 3, 77, 0, 0)
	queued := at(10*time.Second, 1, 5, 28, 0)
	agent, agentLater := at(15*time.Second, 2, 1001, 0, 3), at(20*time.Second, 2, 1001, 0, 8)
	older := at(7*time.Second, 3, 77, 0, 0)
	k := key(ivr)
	steps := []struct {
		name      string
		rows      []transform.Row
		snapshots int // appended by the step
		want      liveState
	}{
		{"first answer", []transform.Row{ivr}, 1, liveState{t0, t0, 1}},
		{"same device later", []transform.Row{ivrLater}, 0, liveState{t0, ivrLater.FetchedAt, 2}},
		{"the same answer again", []transform.Row{ivrLater}, 0, liveState{t0, ivrLater.FetchedAt, 2}},
		{"queued", []transform.Row{queued}, 1, liveState{t0, queued.FetchedAt, 3}},
		{"an older answer", []transform.Row{older}, 0, liveState{t0, queued.FetchedAt, 3}},
		{"at an agent", []transform.Row{agent}, 1, liveState{t0, agent.FetchedAt, 4}},
		{"talk time grows", []transform.Row{agentLater}, 0, liveState{t0, agentLater.FetchedAt, 5}},
	}
	for _, st := range steps {
		stats, err := sink.Commit(t.Context(), st.rows, nil)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if stats.Snapshots != st.snapshots {
			t.Errorf("%s: %d snapshots appended, want %d", st.name, stats.Snapshots, st.snapshots)
		}
		if got := live(t, pool, k); !got.First.Equal(st.want.First) || !got.Last.Equal(st.want.Last) || got.Snapshots != st.want.Snapshots {
			t.Errorf("%s: live state %+v, want %+v", st.name, got, st.want)
		}
	}
	path := snapshots(t, pool, k)
	want := []snapshotRow{
		{t0, 3, 77, 0, 0, ivr.RunID},
		{queued.FetchedAt, 1, 5, 28, 0, queued.RunID},
		{agent.FetchedAt, 2, 1001, 0, 3, agent.RunID},
	}
	if len(path) != len(want) {
		t.Fatalf("path %+v, want %+v", path, want)
	}
	for i := range want {
		if !path[i].SeenAt.Equal(want[i].SeenAt) || path[i].DeviceType != want[i].DeviceType || path[i].DeviceNo != want[i].DeviceNo ||
			path[i].EnterReason != want[i].EnterReason || path[i].Talk != want[i].Talk || path[i].RunID != want[i].RunID {
			t.Errorf("snapshot %d = %+v, want %+v", i, path[i], want[i])
		}
	}
	// A rolled-back commit appends nothing.
	errRollback := errors.New("rollback")
	back := at(25*time.Second, 1, 6, 28, 0)
	if _, err := sink.Commit(t.Context(), []transform.Row{back}, func(context.Context, pgx.Tx) error { return errRollback }); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if n := len(snapshots(t, pool, k)); n != 3 {
		t.Fatalf("%d snapshots after a rolled-back commit, want 3", n)
	}
}
