package queue_test

import (
	"testing"

	"github.com/cmsetl/cms-etl/extract/queue"
)

// BenchmarkClaimComplete measures the queue's own overhead per row: claim a
// batch of 100, settle it done, through a queue of 100,000 rows.
func BenchmarkClaimComplete(b *testing.B) {
	const batch, total = 100, 100_000
	pool := setup(b)
	enqueue(b, pool, keys(0, total))
	q := newQueue(b, pool, "bench", nil)
	rows := 0
	for b.Loop() {
		got, err := q.Claim(b.Context(), batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			// Drained: make every row claimable again (counted in the time).
			if _, err := pool.Exec(b.Context(), "UPDATE cms.call_queue SET status = 'pending', attempts = 0"); err != nil {
				b.Fatal(err)
			}
			continue
		}
		out := make([]queue.Outcome, len(got))
		for i, c := range got {
			out[i] = queue.Outcome{Key: c.Key, Status: queue.StatusDone}
		}
		if n, err := q.Settle(b.Context(), pool, out); err != nil || n != int64(len(got)) {
			b.Fatalf("settle: %d, %v", n, err)
		}
		rows += len(got)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
