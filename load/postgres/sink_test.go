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
	if want := (postgres.UpsertStats{Inserted: 2}); stats != want {
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
			postgres.UpsertStats{Inserted: 3}, row(1, t0, "run-1"), t0},
		{"same data again is unchanged", []transform.Row{row(0, t1, "run-2"), row(1, t1, "run-2"), row(2, t1, "run-2")},
			postgres.UpsertStats{Unchanged: 3}, row(1, t0, "run-1"), t0},
		{"changed data updates and keeps first_fetched_at", []transform.Row{changed, rawOnly, row(0, t2, "run-3")},
			postgres.UpsertStats{Updated: 2, Unchanged: 1}, changed, t0},
		{"an older fetch does not overwrite a newer one", []transform.Row{olderFetch},
			postgres.UpsertStats{Unchanged: 1}, changed, t0},
		{"duplicate key in one batch: latest fetch wins", []transform.Row{dupNew, dupOld},
			postgres.UpsertStats{Inserted: 1}, dupNew, t3},
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
