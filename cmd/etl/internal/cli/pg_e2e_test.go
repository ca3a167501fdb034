package cli

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
)

// migratedDB returns a fresh database with the schema applied by `etl migrate`.
func migratedDB(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	url := pgtest.ConnString(t)
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"migrate", "--database-url", url}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("etl migrate exit %d: %s", code, stderr.String())
	}
	db, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return url, db
}

func count(t *testing.T, db *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestMigrateReportsAndIsIdempotent(t *testing.T) {
	t.Parallel()
	url := pgtest.ConnString(t)
	for i, want := range []string{"applied 001", "up to date"} {
		var stdout, stderr bytes.Buffer
		code := Main(t.Context(), []string{"migrate", "--database-url", url}, Env{Stdout: &stdout, Stderr: &stderr})
		if code != ExitOK || !strings.Contains(stdout.String(), want) {
			t.Fatalf("migrate #%d: exit %d, stdout %q, stderr %q; want %q", i+1, code, stdout.String(), stderr.String(), want)
		}
	}
}

func TestCSVToPostgresAndParquetAtOnce(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{NoDataShare: 0.1, PermanentShare: 0.05})
	in, keys := h.writeCSV("calls.csv", 200, "1,9999,1763856000000-1", "1,1,1763856000000-1000")
	out := filepath.Join(h.dir, "lake")
	want := h.expected(keys)
	args := h.args(in, out, "--rate", "0", "--database-url", url)
	args[4] = "parquet:" + out + ",postgres"

	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitPartial {
		t.Fatalf("exit %d, want 3; stderr:\n%s", o.code, o.stderr)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_info"); n != want["ok"] || o.outcome("loaded") != n {
		t.Fatalf("cms.call_info has %d rows, reported loaded %d, want %d", n, o.outcome("loaded"), want["ok"])
	}
	if _, rows := committed(t, out); int64(rows) != want["ok"] {
		t.Fatalf("parquet has %d rows, want %d", rows, want["ok"])
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_failure"); n != want["permanent"]+1 {
		t.Errorf("cms.call_failure has %d rows, want %d failed + 1 rejected", n, want["permanent"])
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_info WHERE raw IS NULL OR first_fetched_at IS NULL OR run_id = ''"); n != 0 {
		t.Errorf("%d rows lack raw, first_fetched_at or run_id", n)
	}
	var status string
	var loaded int64
	if err := db.QueryRow(t.Context(), "SELECT status, loaded FROM cms.etl_run").Scan(&status, &loaded); err != nil {
		t.Fatal(err)
	}
	if status != "partial" || loaded != want["ok"] || count(t, db, "SELECT count(*) FROM cms.etl_run WHERE summary ? 'outcomes'") != 1 {
		t.Errorf("cms.etl_run: status %q loaded %d, want partial and %d", status, loaded, want["ok"])
	}

	// Rerun: every loaded ID is in both outputs, so nothing is queried again.
	before := h.sim.Stats().Requests
	o2 := h.run(args...)
	checkAccounting(t, o2)
	if o2.outcome("already_loaded") != want["ok"] {
		t.Errorf("rerun already_loaded %d, want %d", o2.outcome("already_loaded"), want["ok"])
	}
	if got := h.sim.Stats().Requests - before; got != want["no_data"]+want["permanent"] {
		t.Errorf("rerun made %d requests, want %d (only no_data and failed IDs again)", got, want["no_data"]+want["permanent"])
	}
}

func enqueueCSV(t *testing.T, url, path string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"enqueue", "--input", "csv:" + path, "--database-url", url}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("etl enqueue exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "inserted") {
		t.Fatalf("enqueue report: %q", stdout.String())
	}
}

func queueArgs(h *harness, url string, more ...string) []string {
	return append([]string{"run", "--input", "queue", "--output", "postgres", "--database-url", url,
		"--api-url", h.sim.URL(), "--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile(),
		"--progress", "none", "--log-format", "json", "--request-timeout", "2s"}, more...)
}

// checkQueueSettled: every queued ID is terminal, and call_info holds exactly
// the done ones.
func checkQueueSettled(t *testing.T, db *pgxpool.Pool, queued int64) {
	t.Helper()
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status IN ('done','no_data','failed')"); n != queued {
		var states []string
		rows, _ := db.Query(t.Context(), "SELECT status || ':' || count(*) FROM cms.call_queue GROUP BY status")
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			states = append(states, s)
		}
		t.Fatalf("%d of %d queue rows terminal: %v", n, queued, states)
	}
	done := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'done'")
	joined := count(t, db, `SELECT count(*) FROM cms.call_queue q JOIN cms.call_info i USING (cc_id, vdn, call_id) WHERE q.status = 'done'`)
	rows := count(t, db, "SELECT count(*) FROM cms.call_info")
	if joined != done || rows != done {
		t.Fatalf("done %d, of which with a row %d; call_info rows %d: want one row per done ID", done, joined, rows)
	}
}

func TestQueueRunKilledThenRerunEndsEveryRowOnce(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 5 * time.Millisecond, NoDataShare: 0.1, PermanentShare: 0.05})
	in, keys := h.writeCSV("calls.csv", 400)
	enqueueCSV(t, url, in)
	args := queueArgs(h, url, "--rate", "100", "--lease", "5s", "--commit-interval", "200ms", "--commit-rows", "20")
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool { return count(t, db, "SELECT count(*) FROM cms.call_info") >= 40 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status IN ('pending','running')"); n == 0 {
		skipOrFail(t, "run finished before the kill: %s", stderr.String())
	}
	// Rows the killed run held are claimable once its lease runs out.
	time.Sleep(5500 * time.Millisecond)
	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK && o.code != ExitPartial {
		t.Fatalf("rerun exit %d:\n%s", o.code, o.stderr)
	}
	checkQueueSettled(t, db, int64(len(keys)))
	want := h.expected(keys)
	if done := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'done'"); done != want["ok"] {
		t.Errorf("done %d, want %d", done, want["ok"])
	}
	if failed := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'failed' AND last_result_code IS NOT NULL"); failed != want["permanent"] {
		t.Errorf("failed with a code %d, want %d", failed, want["permanent"])
	}
}

func TestTwoQueueRunsAtOnceRequestEachIDOnce(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 10 * time.Millisecond, NoDataShare: 0.1})
	in, keys := h.writeCSV("calls.csv", 300)
	enqueueCSV(t, url, in)
	var wg sync.WaitGroup
	outs := make([]runOutput, 2)
	for i := range outs {
		wg.Go(func() {
			outs[i] = h.run(queueArgs(h, url, "--rate", "0", "--concurrency", "4", "--run-id", fmt.Sprintf("concurrent-%d", i))...)
		})
	}
	wg.Wait()
	var total int64
	for i, o := range outs {
		checkAccounting(t, o)
		if o.code != ExitOK {
			t.Fatalf("run %d exit %d:\n%s", i, o.code, o.stderr)
		}
		total += int64(o.num("rows_read"))
	}
	if total != int64(len(keys)) {
		t.Errorf("the two runs read %d rows together, want %d", total, len(keys))
	}
	if outs[0].num("rows_read") == 0 || outs[1].num("rows_read") == 0 {
		t.Logf("one run got no rows (%v, %v): the runs did not overlap", outs[0].num("rows_read"), outs[1].num("rows_read"))
	}
	checkQueueSettled(t, db, int64(len(keys)))
	reqs := h.sim.Stats().CallIDRequests
	for _, k := range keys {
		if n := reqs[simKey(k)]; n != 1 {
			t.Errorf("%s requested %d times, want exactly once", k, n)
		}
	}
}

// Issue 10, defect 6: queue rows that ended no_data could not be requeued.
// A queue run against a simulator with no-data calls (old calls: no
// retries) ends them no_data; `etl requeue --no-data` puts exactly those
// back, and the next run asks them once more.
func TestRequeueNoDataRows(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{NoDataShare: 0.3, PermanentShare: 0.1, Seed: 5})
	in, _ := h.writeCSV("calls.csv", 60)
	enqueueCSV(t, url, in)
	if o := h.run(queueArgs(h, url, "--rate", "0")...); o.code != ExitPartial {
		t.Fatalf("first run exit %d:\n%s", o.code, tail(o.stderr, 2000))
	}
	noData := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'no_data'")
	failed := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'failed'")
	if noData == 0 || failed == 0 {
		t.Fatalf("no_data %d, failed %d: the simulator's plan should give both", noData, failed)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"requeue", "--no-data", "--query", "basic", "--database-url", url}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("requeue exit %d: %s", code, stderr.String())
	}
	if want := fmt.Sprintf("requeued %d basic no_data rows", noData); !strings.Contains(stdout.String(), want) {
		t.Fatalf("requeue said %q, want %q", stdout.String(), want)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'pending'"); n != noData {
		t.Fatalf("%d rows pending, want the %d no_data ones", n, noData)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'failed'"); n != failed {
		t.Fatalf("failed rows changed: %d, want %d", n, failed)
	}
	before := h.sim.Stats().Requests
	h.run(queueArgs(h, url, "--rate", "0")...)
	if got := h.sim.Stats().Requests - before; got != noData {
		t.Fatalf("the run after requeue made %d requests, want one per requeued row (%d)", got, noData)
	}
}
