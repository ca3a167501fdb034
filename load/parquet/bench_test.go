package parquet_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	pqsink "github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

// BenchmarkWrite100k writes 100,000 full rows over two partitions in
// batches of 1,000, committing every 10,000 rows as the job does. Besides
// allocs it reports the peak live heap sampled before each commit, the figure
// that must stay bounded however many rows a run writes.
func BenchmarkWrite100k(b *testing.B) {
	const total, batch, commitEvery = 100_000, 1_000, 10_000
	rows := make([]transform.Row, batch)
	for i := range rows {
		rows[i] = fullRow("")
		if i%2 == 0 {
			rows[i].EnteredAt = ptr(enteredAt.Add(24 * time.Hour))
		}
	}
	b.ReportAllocs()
	var peak uint64
	var ms runtime.MemStats
	for b.Loop() {
		s := openSink(b, b.TempDir())
		for n := 0; n < total; n += batch {
			for i := range rows {
				rows[i].CallID = "1732400000000-" + strconv.Itoa(n+i)
			}
			if err := s.Write(b.Context(), rows); err != nil {
				b.Fatal(err)
			}
			if (n+batch)%commitEvery == 0 {
				runtime.GC() // live heap, not garbage awaiting collection
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
				if _, err := s.Commit(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCommittedKeys100k reads the keys of 100,000 committed rows in
// ten files, as a resumed run does before it starts.
func BenchmarkCommittedKeys100k(b *testing.B) {
	dir := b.TempDir()
	s := openSink(b, dir)
	rows := make([]transform.Row, 10_000)
	for f := range 10 {
		for i := range rows {
			rows[i] = fullRow("1732400000000-" + strconv.Itoa(f*len(rows)+i))
		}
		if err := s.Write(b.Context(), rows); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Commit(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		keys, st, err := pqsink.CommittedKeys(b.Context(), dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.Rows != 100_000 || keys.Len() != 100_000 {
			b.Fatalf("CommittedKeys = %d keys, %d rows", keys.Len(), st.Rows)
		}
		keys.Close()
	}
}
