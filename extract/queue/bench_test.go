package queue_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/extract/queue"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

// workerEnv makes the test binary a queue worker (see runBenchWorker).
const workerEnv = "QUEUE_BENCH_WORKER_DATABASE_URL"

// BenchmarkClaimComplete2Processes drains a queue of 200,000 rows with two
// worker processes at once, each claiming batches of 100 and settling them
// done, as two etl runs on different hosts would (without the HTTP calls).
// Every row must end done, settled exactly once. Run with -benchtime=1x.
func BenchmarkClaimComplete2Processes(b *testing.B) {
	const total, workers = 200_000, 2
	pool, url := pgtest.Migrated(b)
	enqueue(b, pool, keys(0, total))
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := pool.Exec(b.Context(), "UPDATE cms.call_queue SET status = 'pending', attempts = 0, locked_by = NULL, locked_until = NULL, available_at = now()"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		settled := make([]int, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				var stdout, stderr bytes.Buffer
				cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), workerEnv+"="+url, "QUEUE_BENCH_WORKER_NAME=w"+strconv.Itoa(w))
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					b.Errorf("worker %d: %v\n%s", w, err, stderr.String())
					return
				}
				n, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
				if err != nil {
					b.Errorf("worker %d output %q: %v", w, stdout.String(), err)
				}
				settled[w] = n
			})
		}
		wg.Wait()
		took += time.Since(start)
		if settled[0]+settled[1] != total {
			b.Fatalf("workers settled %v rows, want %d in all", settled, total)
		}
		var done int
		if err := pool.QueryRow(b.Context(), "SELECT count(*) FROM cms.call_queue WHERE status = 'done' AND attempts = 1").Scan(&done); err != nil {
			b.Fatal(err)
		}
		if done != total {
			b.Fatalf("%d rows done after one claim, want %d", done, total)
		}
		b.Logf("workers settled %v rows", settled)
	}
	b.ReportMetric(float64(total*b.N)/took.Seconds(), "rows/s")
}

// runBenchWorker claims and settles until the queue is drained, then prints
// how many rows it settled.
func runBenchWorker(url, name string) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := queue.New(queue.Config{Pool: pool, Owner: name})
	if err != nil {
		return err
	}
	settled := 0
	for {
		got, _, err := q.Claim(ctx, 100)
		if err != nil {
			return err
		}
		if len(got) == 0 {
			fmt.Println(settled)
			return nil
		}
		n, err := q.Settle(ctx, pool, outcomes(claimedKeys(got), queue.StatusDone))
		if err != nil {
			return err
		}
		settled += int(n)
	}
}

// BenchmarkSettleBatchSize drains 100,000 rows in claims of 100 and of
// 5,000 (a large commit's settlement), side by side in one run: the
// settlement must cost about the same per row at either size. Its
// statement once joined the outcomes to the queue by a plan that was
// quadratic in the batch (7.6 s for 5,000 rows).
func BenchmarkSettleBatchSize(b *testing.B) {
	const total = 100_000
	pool, _ := pgtest.Migrated(b)
	enqueue(b, pool, keys(0, total))
	q, err := queue.New(queue.Config{Pool: pool, Owner: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	perRow := map[int]time.Duration{}
	for b.Loop() {
		for _, size := range []int{100, 5000} {
			b.StopTimer()
			if _, err := pool.Exec(b.Context(), "UPDATE cms.call_queue SET status = 'pending', attempts = 0, locked_by = NULL, locked_until = NULL, available_at = now()"); err != nil {
				b.Fatal(err)
			}
			if _, err := pool.Exec(b.Context(), "VACUUM ANALYZE cms.call_queue"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			var took time.Duration
			for settled := 0; settled < total; {
				got, _, err := q.Claim(b.Context(), size)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				n, err := q.Settle(b.Context(), pool, outcomes(claimedKeys(got), queue.StatusDone))
				if err != nil {
					b.Fatal(err)
				}
				took += time.Since(start)
				settled += int(n)
			}
			perRow[size] += took / total
		}
	}
	small, large := perRow[100]/time.Duration(b.N), perRow[5000]/time.Duration(b.N)
	b.ReportMetric(float64(small.Nanoseconds())/1e3, "settle_us/row_batch100")
	b.ReportMetric(float64(large.Nanoseconds())/1e3, "settle_us/row_batch5000")
	b.Logf("settle per row: %v in batches of 100, %v in batches of 5,000", small, large)
	if large > 2*small {
		b.Errorf("settling 5,000 rows at once costs %v per row, more than twice the %v of batches of 100", large, small)
	}
}
