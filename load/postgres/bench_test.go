package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/transform"
)

const benchChunk = 50_000

func benchRows(n int, runID string) []transform.Row {
	rows := make([]transform.Row, n)
	for i := range rows {
		rows[i] = row(i, t0, runID)
	}
	return rows
}

// BenchmarkUpsert measures one Commit of 50,000 rows: new keys (insert) and
// the same rows again (unchanged, the nightly re-fetch case).
func BenchmarkUpsert(b *testing.B) {
	pool := setup(b)
	sink := newSink(b, pool)
	rows := benchRows(benchChunk, "bench")

	b.Run("insert", func(b *testing.B) {
		ccID := int32(0)
		for b.Loop() {
			ccID++ // a new key set every round
			for i := range rows {
				rows[i].CCID = ccID
			}
			if _, err := sink.Commit(b.Context(), rows, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchChunk*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("unchanged", func(b *testing.B) {
		for i := range rows {
			rows[i].CCID = 1
		}
		for b.Loop() {
			stats, err := sink.Commit(b.Context(), rows, nil)
			if err != nil {
				b.Fatal(err)
			}
			if stats.Unchanged != benchChunk {
				b.Fatalf("stats %+v, want all unchanged", stats)
			}
		}
		b.ReportMetric(float64(benchChunk*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkLoadVsCopy loads 500,000 rows in commits of 50,000 into an empty
// cms.call_info through the sink and, side by side, with a plain COPY of the
// same rows into a copy of the table (same keys and indexes) and of their
// first snapshots into a copy of cms.call_snapshot (the sink appends one per
// new call); then the same rows again through the sink (all unchanged). Run
// with -benchtime=1x.
func BenchmarkLoadVsCopy(b *testing.B) {
	const total = 500_000
	pool := setup(b)
	sink := newSink(b, pool)
	for _, table := range []string{"call_info", "call_snapshot"} {
		if _, err := pool.Exec(b.Context(), "CREATE TABLE cms."+table+"_copy (LIKE cms."+table+" INCLUDING ALL)"); err != nil {
			b.Fatal(err)
		}
	}
	rows := benchRows(benchChunk, "bench")
	copyColumns := append(append([]string{}, transform.Columns...), "raw", "first_fetched_at", "first_seen_live_at", "last_seen_live_at", "snapshots")
	snapshotColumns := []string{"cc_id", "vdn", "call_id", "seen_at", "device_type", "device_type_label", "device_no",
		"wait_seconds", "talk_seconds", "logon_seconds", "enter_reason", "enter_reason_label", "run_id"}
	var copyTook, upsertTook, unchangedTook time.Duration

	copyChunk := func(ctx context.Context) {
		src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return append(valuesOf(r), r.FetchedAt, r.FetchedAt, r.FetchedAt, int32(1)), nil
		})
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"cms", "call_info_copy"}, copyColumns, src); err != nil {
			b.Fatal(err)
		}
		snaps := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{r.CCID, r.VDN, r.CallID, r.FetchedAt, r.DeviceType, r.DeviceTypeLabel, r.DeviceNo,
				r.WaitSeconds, r.TalkSeconds, r.LogonSeconds, r.EnterReason, r.EnterReasonLabel, r.RunID}, nil
		})
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"cms", "call_snapshot_copy"}, snapshotColumns, snaps); err != nil {
			b.Fatal(err)
		}
	}
	upsertChunk := func(ctx context.Context, wantUnchanged bool) {
		stats, err := sink.Commit(ctx, rows, nil)
		if err != nil {
			b.Fatal(err)
		}
		if wantUnchanged && stats.Unchanged != benchChunk {
			b.Fatalf("second pass: %+v, want all unchanged", stats)
		}
	}
	timed := func(took *time.Duration, f func()) {
		start := time.Now()
		f()
		*took += time.Since(start)
	}

	for b.Loop() {
		if _, err := pool.Exec(b.Context(), "TRUNCATE cms.call_info, cms.call_info_copy, cms.call_snapshot, cms.call_snapshot_copy"); err != nil {
			b.Fatal(err)
		}
		// Chunk by chunk, alternating which goes first, so both sides meet
		// the same table sizes, checkpoints and autovacuum.
		for c := range total / benchChunk {
			for i := range rows {
				rows[i].CCID = int32(c + 1)
			}
			if c%2 == 0 {
				timed(&copyTook, func() { copyChunk(b.Context()) })
				timed(&upsertTook, func() { upsertChunk(b.Context(), false) })
			} else {
				timed(&upsertTook, func() { upsertChunk(b.Context(), false) })
				timed(&copyTook, func() { copyChunk(b.Context()) })
			}
		}
		for c := range total / benchChunk {
			for i := range rows {
				rows[i].CCID = int32(c + 1)
			}
			timed(&unchangedTook, func() { upsertChunk(b.Context(), true) })
		}
	}
	rate := func(d time.Duration) float64 { return float64(total*b.N) / d.Seconds() }
	b.ReportMetric(rate(copyTook), "copy_rows/s")
	b.ReportMetric(rate(upsertTook), "upsert_rows/s")
	b.ReportMetric(rate(unchangedTook), "unchanged_rows/s")
	b.ReportMetric(rate(upsertTook)/rate(copyTook), "upsert/copy")
	b.Logf("COPY %.0f rows/s; sink upsert %.0f rows/s (%.0f%% of COPY); unchanged second pass %.0f rows/s",
		rate(copyTook), rate(upsertTook), 100*rate(upsertTook)/rate(copyTook), rate(unchangedTook))
	if rate(upsertTook) < 0.6*rate(copyTook) {
		b.Errorf("sink upsert %.0f rows/s is %.0f%% of plain COPY's %.0f rows/s, want at least 60%%",
			rate(upsertTook), 100*rate(upsertTook)/rate(copyTook), rate(copyTook))
	}
	if unchangedTook >= upsertTook {
		b.Errorf("second pass of unchanged rows took %v, not faster than the first pass (%v)", unchangedTook, upsertTook)
	}
}

// valuesOf lists a row's values in transform.Columns order, then raw: the
// plain-COPY side of the comparison, written independently of the sink.
func valuesOf(r *transform.Row) []any {
	v := []any{r.CCID, r.VDN, r.CallID, r.CallStartedAt, r.EnteredAt, r.DSN, r.Handle, r.Server, r.KeyID,
		r.CallingNum, r.CalledNum, r.MID, r.TrunkNo, r.Priority, r.DeviceType, r.DeviceTypeLabel,
		r.DeviceNo, r.CallSkill, r.PartyNum, r.CallFeature, r.CallFeatureLabel, r.OrigCalledNum,
		r.MediaType, r.MediaTypeLabel, r.Place, r.WaitSeconds, r.TalkSeconds, r.LogonSeconds,
		r.ServiceType, r.CallInCause, r.EnterReason, r.EnterReasonLabel, r.MediaBillType,
		r.FetchedAt, r.RunID}
	if len(v) != len(transform.Columns) {
		panic("valuesOf is out of date with transform.Columns: " + strings.Join(transform.Columns, ","))
	}
	return append(v, []byte(r.Raw))
}
