package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	parquetgo "github.com/parquet-go/parquet-go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest/cluster"
)

// The follower's tests run `etl run --input queue --follow` against a real
// PostgreSQL (its NOTIFY trigger, its leases) and the simulator over TLS.
// In-process runs end by cancelling Main's context, which is what SIGINT and
// SIGTERM do to the command (cli.Run); one test sends a real SIGTERM to a
// real process.

// followerRun is an in-process follower.
type followerRun struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan int
	stderr *syncWriter
	buf    *bytes.Buffer
}

func (h *harness) startFollower(args ...string) *followerRun {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.t.Context())
	buf := &bytes.Buffer{}
	f := &followerRun{t: h.t, cancel: cancel, done: make(chan int, 1), buf: buf, stderr: &syncWriter{w: buf}}
	go func() { f.done <- Main(ctx, args, Env{Stdout: io.Discard, Stderr: f.stderr}) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(30 * time.Second):
		}
	})
	return f
}

// log is the follower's stderr so far.
func (f *followerRun) log() string {
	f.stderr.mu.Lock()
	defer f.stderr.mu.Unlock()
	return f.buf.String()
}

// event returns the first JSON log line whose message or event field is
// name, with its fields; nil when none yet.
func (f *followerRun) event(name string) map[string]any {
	for _, line := range strings.Split(f.log(), "\n") {
		if !strings.Contains(line, name) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && (m["event"] == name || m["message"] == name) {
			return m
		}
	}
	return nil
}

// waitEvent waits for a log event of the follower.
func (f *followerRun) waitEvent(name string) map[string]any {
	f.t.Helper()
	var m map[string]any
	waitFor(f.t, func() bool { m = f.event(name); return m != nil })
	return m
}

// stop ends the follower as a signal does and returns its output.
func (f *followerRun) stop() runOutput {
	f.t.Helper()
	f.cancel()
	select {
	case code := <-f.done:
		return parseRun(f.t, code, f.log())
	case <-time.After(60 * time.Second):
		f.t.Fatalf("the follower did not stop within 60s of its signal:\n%s", tail(f.log(), 3000))
	}
	return runOutput{}
}

// addr is the address the follower serves /metrics and /healthz on.
func (f *followerRun) addr() string {
	f.t.Helper()
	ev := f.waitEvent("serving /metrics and /healthz")
	a, _ := ev["listen"].(string)
	return a
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// producer inserts keys as an event source does at call start: the
// documented contract, one statement per call.
func produce(t *testing.T, db *pgxpool.Pool, keys ...extract.Key) {
	t.Helper()
	for _, k := range keys {
		if _, err := db.Exec(t.Context(), `INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			k.CCID, k.VDN, k.CallID); err != nil {
			t.Fatal(err)
		}
	}
}

// flatKeys are n keys for a simulator without a call schedule (every key
// answers), distinct from writeCSV's.
func flatKeys(from, n int) []extract.Key {
	out := make([]extract.Key, n)
	for i := range out {
		out[i] = extract.Key{CCID: 2, VDN: 1 + (from+i)%4, CallID: fmt.Sprintf("1764000000000-%d", from+i)}
	}
	return out
}

// statuses counts the queue's rows by status.
func statuses(t *testing.T, db *pgxpool.Pool) map[string]int64 {
	t.Helper()
	rows, err := db.Query(t.Context(), "SELECT status, count(*) FROM cms.call_queue GROUP BY status")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	var s string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&s, &n}, func() error { out[s] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// A follower wakes on the trigger's NOTIFY at once; without the trigger its
// poll finds the rows. Either way each call is enriched within seconds of
// its insertion, and the follower ends on its signal with exit 0.
func TestFollowerWakesOnNotifyAndPollsWithoutIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trigger bool
		poll    string
		within  time.Duration
	}{
		{"notify", true, "1m", 3 * time.Second},
		{"poll without the trigger", false, "300ms", 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, db := migratedDB(t)
			if !tc.trigger {
				if _, err := db.Exec(t.Context(), "DROP TRIGGER call_queue_notify ON cms.call_queue"); err != nil {
					t.Fatal(err)
				}
			}
			h := newHarness(t, cmssim.Config{})
			f := h.startFollower(queueArgs(h, url, "--follow", "--poll-interval", tc.poll, "--commit-interval", "100ms", "--rate", "0")...)
			f.waitEvent("run started")
			time.Sleep(300 * time.Millisecond) // the follower is idle, waiting
			for i, k := range flatKeys(0, 3) {
				inserted := time.Now()
				produce(t, db, k)
				for count(t, db, "SELECT count(*) FROM cms.call_info WHERE call_id = $1", k.CallID) == 0 {
					if time.Since(inserted) > tc.within {
						t.Fatalf("call %d not enriched %s after its insertion (poll %s):\n%s", i, time.Since(inserted), tc.poll, tail(f.log(), 2000))
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(200 * time.Millisecond)
			}
			o := f.stop()
			if o.code != ExitOK || o.outcome("loaded") != 3 || o.summary["status"] != "succeeded" {
				t.Fatalf("exit %d, status %v, outcomes %v; want 0, succeeded, 3 loaded:\n%s", o.code, o.summary["status"], o.summary["outcomes"], tail(o.stderr, 2000))
			}
		})
	}
}

// Live calls from the simulator's schedule, inserted at their start: the
// follower enriches each while it is live and, with --track-every, asks it
// again until it answers "no data" (it ended). cms.call_info keeps the last
// live answer with first/last seen and the count; cms.call_snapshot gets a
// row only when the device or state changed; the Parquet files get one row
// per call, written when its tracking ended, from its last live answer.
// /metrics, /healthz and the rolling cms.etl_run row are checked while it
// runs.
func TestFollowerTracksLiveCallsToTheirEnd(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	calls := cmssim.DefaultCalls()
	calls.VDNs = []cmssim.VDN{{CCID: 1, VDN: 25}}
	calls.CallsPerMinute, calls.MinDuration, calls.MaxDuration = 150, 5*time.Second, 9*time.Second
	h := newHarness(t, cmssim.Config{Calls: &calls, Latency: 5 * time.Millisecond})
	lake := filepath.Join(h.dir, "lake")
	f := h.startFollower(queueArgs(h, url, "--follow", "--output", "parquet:"+lake, "--track-every", "1s", "--commit-interval", "200ms",
		"--rate", "0", "--listen", "127.0.0.1:0")...)
	addr := f.addr()
	f.waitEvent("run started")

	// The producer: each call at its start, for 6 seconds.
	gen, err := cmssim.NewGenerator(cmssim.GeneratorConfig{Schedule: h.sim.Schedule(), Until: time.Now().Add(6 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var generated []cmssim.Call
	var mu sync.Mutex
	if _, err := gen.Run(t.Context(), func(ctx context.Context, c cmssim.Call) error {
		produce(t, db, c.Key())
		mu.Lock()
		generated = append(generated, c)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(generated) < 5 {
		t.Fatalf("the generator made %d calls in 6s", len(generated))
	}
	if code, body := httpGet(t, "http://"+addr+"/healthz"); code != 200 || !strings.HasPrefix(body, "ok") {
		t.Errorf("/healthz while working: %d %q", code, body)
	}
	_, metrics := httpGet(t, "http://"+addr+"/metrics")
	for _, name := range []string{"cms_etl_queue_tracked ", "cms_etl_queue_due ", "cms_etl_in_flight ", "cms_etl_paused 0",
		"cms_etl_queue_listening 1", "cms_etl_enqueue_to_first_answer_seconds_bucket", `cms_etl_rows{outcome="tracked"}`, "cms_etl_requests "} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if strings.Contains(metrics, "cms_etl_exit_code") {
		t.Error("/metrics of a running follower reports an exit code")
	}
	var running struct {
		Status  string
		Read    int64
		Updated time.Time
		Started time.Time
	}
	if err := db.QueryRow(t.Context(), `SELECT status, rows_read, updated_at, started_at FROM cms.etl_run`).Scan(
		&running.Status, &running.Read, &running.Updated, &running.Started); err != nil {
		t.Fatal(err)
	}
	if running.Status != "running" || running.Read == 0 || !running.Updated.After(running.Started) {
		t.Errorf("cms.etl_run while the follower runs: %+v; want running with the counts of its commits", running)
	}
	// Every call ends within 9s of its start; tracking ends at the first
	// "no data" after that.
	waitFor(t, func() bool {
		st := statuses(t, db)
		return st["pending"] == 0 && st["running"] == 0
	})
	o := f.stop()
	if o.code != ExitOK {
		t.Fatalf("exit %d:\n%s", o.code, tail(o.stderr, 3000))
	}
	if st := statuses(t, db); st["done"] != int64(len(generated)) {
		t.Fatalf("queue %v; want all %d calls done", st, len(generated))
	}

	type info struct {
		First, Last time.Time
		Snapshots   int
		Device      int32
		Enqueued    time.Time
	}
	requests := h.sim.Stats().CallIDRequests
	for _, c := range generated {
		k := c.Key()
		var in info
		err := db.QueryRow(t.Context(), `SELECT i.first_seen_live_at, i.last_seen_live_at, i.snapshots, i.device_type, q.enqueued_at
			FROM cms.call_info i JOIN cms.call_queue q USING (cc_id, vdn, call_id) WHERE (cc_id, vdn, call_id) = ($1, $2, $3)`,
			k.CCID, k.VDN, k.CallID).Scan(&in.First, &in.Last, &in.Snapshots, &in.Device, &in.Enqueued)
		if err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		life := c.CallEnd.Sub(c.WaitBegin)
		if in.First.Sub(in.Enqueued) > 2*time.Second {
			t.Errorf("%s: first answer %s after its insertion", k, in.First.Sub(in.Enqueued))
		}
		// Polled every second while live: the last live answer within a
		// poll (plus slack for a loaded machine) of the end.
		if gap := c.CallEnd.Sub(in.Last); gap < 0 || gap > 2500*time.Millisecond {
			t.Errorf("%s: last seen live %s before its end", k, gap)
		}
		if min := int(life/time.Second) - 3; in.Snapshots < min {
			t.Errorf("%s: %d live answers over a %s call, want at least %d", k, in.Snapshots, life, min)
		}
		if n := requests[simKey(k)]; n > int64(in.Snapshots)+2 {
			t.Errorf("%s: %d requests for %d live answers (one more, for the end, expected)", k, n, in.Snapshots)
		}
		// The path: consecutive snapshots differ in device or state.
		rows, err := db.Query(t.Context(), `SELECT device_type, device_no, enter_reason FROM cms.call_snapshot
			WHERE (cc_id, vdn, call_id) = ($1, $2, $3) ORDER BY seen_at`, k.CCID, k.VDN, k.CallID)
		if err != nil {
			t.Fatal(err)
		}
		path, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Type, No, Reason int64 }])
		if err != nil {
			t.Fatal(err)
		}
		if len(path) == 0 || len(path) > 3 {
			t.Errorf("%s: path %v, want 1 to 3 states (IVR, queue, agent)", k, path)
		}
		for i := 1; i < len(path); i++ {
			if path[i] == path[i-1] {
				t.Errorf("%s: snapshot %d repeats the state before it: %v", k, i, path)
			}
		}
		if len(path) > 0 && int32(path[len(path)-1].Type) != in.Device {
			t.Errorf("%s: last snapshot %v, call_info device %d", k, path[len(path)-1], in.Device)
		}
	}

	// Parquet: one row per call, the last live answer, read back by an
	// independent reader.
	type pqRow struct {
		CallID     string    `parquet:"call_id"`
		DeviceType *int32    `parquet:"device_type,optional"`
		FetchedAt  time.Time `parquet:"fetched_at,timestamp(microsecond)"`
	}
	files, _ := filepath.Glob(filepath.Join(lake, "*", "*.parquet"))
	seen := map[string]pqRow{}
	for _, file := range files {
		rows, err := parquetgo.ReadFile[pqRow](file)
		if err != nil {
			t.Fatalf("read %s: %v", file, err)
		}
		for _, r := range rows {
			if _, dup := seen[r.CallID]; dup {
				t.Errorf("%s has two rows in the Parquet files", r.CallID)
			}
			seen[r.CallID] = r
		}
	}
	if len(seen) != len(generated) {
		t.Fatalf("%d calls in the Parquet files, want %d (one per call)", len(seen), len(generated))
	}
	for _, c := range generated {
		var last time.Time
		var device int32
		if err := db.QueryRow(t.Context(), `SELECT last_seen_live_at, device_type FROM cms.call_info WHERE call_id = $1`, c.CallID).Scan(&last, &device); err != nil {
			t.Fatal(err)
		}
		r := seen[c.CallID]
		if !r.FetchedAt.Equal(last) || r.DeviceType == nil || *r.DeviceType != device {
			t.Errorf("%s: Parquet row fetched %v device %v; want the last live answer (%v, %d)", c.CallID, r.FetchedAt, r.DeviceType, last, device)
		}
	}
	if o.outcome("tracked") == 0 || o.outcome("loaded") != int64(len(generated)) {
		t.Errorf("outcomes %v: want tracked answers and one loaded (final) row per call", o.summary["outcomes"])
	}
}

// The API goes down: where a batch run would stop on the transient streak,
// the follower pauses (logs it, /healthz 503), probes until the API answers,
// resumes (logs it, /healthz 200) and enriches every call, the ones the
// outage failed included: none ends failed.
func TestFollowerPausesOnAnOutageAndResumes(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 2 * time.Millisecond})
	f := h.startFollower(queueArgs(h, url, "--follow", "--commit-interval", "100ms", "--rate", "0", "--max-transient-streak", "5",
		"--max-attempts", "2", "--listen", "127.0.0.1:0")...)
	addr := f.addr()
	before := flatKeys(0, 10)
	produce(t, db, before...)
	waitFor(t, func() bool { return statuses(t, db)["done"] == int64(len(before)) })

	h.sim.SetDown(true)
	during := flatKeys(100, 30)
	produce(t, db, during...)
	paused := f.waitEvent("api_paused")
	if paused["level"] != "warn" {
		t.Errorf("pause logged as %v", paused)
	}
	waitFor(t, func() bool {
		code, _ := httpGet(t, "http://"+addr+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	_, body := httpGet(t, "http://"+addr+"/healthz")
	if !strings.HasPrefix(body, "paused") {
		t.Errorf("/healthz while paused: %q", body)
	}
	if _, m := httpGet(t, "http://"+addr+"/metrics"); !strings.Contains(m, "cms_etl_paused 1") {
		t.Error("/metrics does not show the pause")
	}
	f.waitEvent("api_probe_failed")
	if code := statuses(t, db); code["failed"] != 0 {
		t.Fatalf("rows failed during the outage: %v", code)
	}

	h.sim.SetDown(false)
	f.waitEvent("api_resumed")
	waitFor(t, func() bool { code, _ := httpGet(t, "http://"+addr+"/healthz"); return code == http.StatusOK })
	waitFor(t, func() bool { return statuses(t, db)["done"] == int64(len(before)+len(during)) })
	o := f.stop()
	if o.code != ExitOK || o.num("api_outages") != 1 || o.num("api_paused_s") <= 0 {
		t.Fatalf("exit %d, outages %v, paused %vs; want 0, 1, > 0:\n%s", o.code, o.num("api_outages"), o.num("api_paused_s"), tail(o.stderr, 3000))
	}
	if st := statuses(t, db); st["failed"] != 0 || st["done"] != int64(len(before)+len(during)) {
		t.Fatalf("queue after the outage: %v", st)
	}
}

// What ends a batch run at once ends a follower too (exit 1): a refused
// signature (repeating it can get the caller's IP locked) or a certificate
// that does not verify. The rows it held go back to pending, none failed.
func TestFollowerEndsOnAFatalAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, flag string
		file       func(t *testing.T, dir string) string
		want       string
	}{
		{"401", "--sk-file", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "wrong.sk")
			if err := os.WriteFile(path, []byte("notTheSK\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "HTTP 401"},
		{"TLS", "--ca-file", func(t *testing.T, dir string) string {
			other := httptest.NewTLSServer(http.NotFoundHandler()) // its certificate signs nothing of the simulator's
			other.Close()
			path := filepath.Join(dir, "other-ca.pem")
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, db := migratedDB(t)
			h := newHarness(t, cmssim.Config{})
			keys := flatKeys(0, 5)
			produce(t, db, keys...)
			// The flag given last wins: the wrong file replaces queueArgs' right one.
			f := h.startFollower(queueArgs(h, url, "--follow", "--rate", "0", "--commit-interval", "100ms",
				tc.flag, tc.file(t, h.dir))...)
			select {
			case code := <-f.done:
				f.done <- code // for the cleanup's wait
				o := parseRun(t, code, f.log())
				if code != ExitAborted || !strings.Contains(fmt.Sprint(o.summary["error"]), tc.want) {
					t.Fatalf("exit %d, error %v; want %d naming %s:\n%s", code, o.summary["error"], ExitAborted, tc.want, tail(f.log(), 2000))
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the follower did not end on %s within 30s:\n%s", tc.name, tail(f.log(), 2000))
			}
			if st := statuses(t, db); st["pending"] != int64(len(keys)) {
				t.Errorf("queue after the fatal answer: %v; want all %d rows pending again", st, len(keys))
			}
		})
	}
}

// Two followers share one queue: every call is asked about exactly once and
// ends done once, whichever follower claimed it.
func TestTwoFollowersHandleEachRowOnce(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 5 * time.Millisecond})
	var fs []*followerRun
	for i := range 2 {
		fs = append(fs, h.startFollower(queueArgs(h, url, "--follow", "--commit-interval", "100ms", "--rate", "0", "--concurrency", "4",
			"--run-id", fmt.Sprintf("follower-%d", i))...))
	}
	for _, f := range fs {
		f.waitEvent("run started")
	}
	keys := flatKeys(0, 300)
	for i := 0; i < len(keys); i += 15 {
		produce(t, db, keys[i:i+15]...)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, func() bool { return statuses(t, db)["done"] == int64(len(keys)) })
	var read float64
	for i, f := range fs {
		o := f.stop()
		if o.code != ExitOK {
			t.Fatalf("follower %d exit %d:\n%s", i, o.code, tail(o.stderr, 2000))
		}
		read += o.num("rows_read")
		if o.num("rows_read") == 0 {
			t.Logf("follower %d got no rows: the followers did not overlap", i)
		}
	}
	if read != float64(len(keys)) {
		t.Errorf("the followers read %v rows together, want %d", read, len(keys))
	}
	checkQueueSettled(t, db, int64(len(keys)))
	reqs := h.sim.Stats().CallIDRequests
	for _, k := range keys {
		if n := reqs[simKey(k)]; n != 1 {
			t.Errorf("%s requested %d times, want exactly once", k, n)
		}
	}
}

// A real SIGTERM to a real follower process: it stops claiming, lets the
// calls in flight finish, commits, hands back what it holds and exits 0;
// nothing is lost (every row is done with its data, or pending again with
// its claim not counted) and a later run finishes the rest without asking
// any call twice.
func TestFollowerSIGTERMExitsZeroWithNothingLost(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 150 * time.Millisecond})
	keys := flatKeys(0, 400)
	produce(t, db, keys...)
	cmd, stderr := h.subprocess(queueArgs(h, url, "--follow", "--commit-interval", "100ms", "--rate", "40", "--concurrency", "8")...)
	waitFor(t, func() bool { return statuses(t, db)["done"] >= 40 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != ExitOK {
		t.Fatalf("exit %d after SIGTERM (%v), want 0:\n%s", code, err, tail(stderr.String(), 3000))
	}
	o := parseRun(t, ExitOK, stderr.String())
	checkAccounting(t, o)
	st := statuses(t, db)
	if st["running"] != 0 || st["failed"] != 0 || st["pending"] == 0 {
		t.Fatalf("queue after SIGTERM: %v; want nothing running or failed, the rest pending", st)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'pending' AND attempts <> 0"); n != 0 {
		t.Errorf("%d handed-back rows had their claim counted", n)
	}
	if done := count(t, db, "SELECT count(*) FROM cms.call_queue q JOIN cms.call_info USING (cc_id, vdn, call_id) WHERE q.status = 'done'"); done != st["done"] {
		t.Errorf("%d done rows have data, of %d", done, st["done"])
	}
	rest := h.run(queueArgs(h, url, "--rate", "0")...)
	if rest.code != ExitOK {
		t.Fatalf("the run after exit %d:\n%s", rest.code, tail(rest.stderr, 2000))
	}
	checkQueueSettled(t, db, int64(len(keys)))
	reqs := h.sim.Stats().CallIDRequests
	for _, k := range keys {
		if n := reqs[simKey(k)]; n != 1 {
			t.Errorf("%s requested %d times, want once", k, n)
		}
	}
}

// `event-source | etl enqueue --input csv:-`: each row written to the pipe
// is in the queue within a fraction of a second, while the pipe stays open.
func TestEnqueueFromAPipeCommitsRowsAsTheyArrive(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "enqueue", "--input", "csv:-", "--database-url", url, "--log-format", "json")
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	w := bufio.NewWriter(stdin)
	fmt.Fprintln(w, "ccId,vdn,callId")
	for i, k := range flatKeys(0, 3) {
		fmt.Fprintf(w, "%d,%d,%s\n", k.CCID, k.VDN, k.CallID)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		for count(t, db, "SELECT count(*) FROM cms.call_queue WHERE call_id = $1", k.CallID) == 0 {
			if time.Since(sent) > 2*time.Second {
				t.Fatalf("row %d not queued %s after it was written to the pipe:\n%s", i, time.Since(sent), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("etl enqueue: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "3 rows read, 3 inserted") {
		t.Errorf("report %q", stdout.String())
	}
}

// The metrics file is written by the Prometheus library from the same
// definitions as /metrics: it parses, carries every figure of the summary
// (503s, rate cuts, field problems, failures by outcome and code...), and
// every metric name is documented in README.md.
func TestMetricsFileCarriesTheSummaryAndEveryNameIsDocumented(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{PermanentShare: 0.1, TransientShare: 0.05, TransientAttempts: 1,
		TransientKinds: []string{cmssim.FaultUnavailable}})
	in, keys := h.writeCSV("calls.csv", 200, "1,9999,1763856000000-1")
	metrics := filepath.Join(h.dir, "etl.prom")
	o := h.run(h.args(in, filepath.Join(h.dir, "lake"), "--metrics-file", metrics, "--rate", "0")...)
	if o.code != ExitPartial {
		t.Fatalf("exit %d:\n%s", o.code, o.stderr)
	}
	b, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	families := parseTextfile(t, string(b))
	want := h.expected(keys)
	for name, v := range map[string]float64{
		`cms_etl_rows{outcome="failed"}`:                   float64(want["permanent"]),
		`cms_etl_rows{outcome="rejected"}`:                 1,
		`cms_etl_failures{code="none",outcome="rejected"}`: 1,
		`cms_etl_http_unavailable`:                         o.num("http_503"),
		`cms_etl_exit_code`:                                ExitPartial,
		`cms_etl_field_problems`:                           o.num("field_problems"),
		`cms_etl_rate_cuts`:                                o.num("rate_cuts"),
		`cms_etl_throttle_events`:                          o.num("throttle_events"),
	} {
		got, ok := families[name]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	var failed float64
	for k, v := range families {
		if strings.HasPrefix(k, "cms_etl_failures{") && strings.Contains(k, `outcome="failed"`) {
			failed += v
		}
	}
	if failed != float64(want["permanent"]) {
		t.Errorf("cms_etl_failures of outcome failed add up to %v, want %d", failed, want["permanent"])
	}
	if o.num("http_503") == 0 {
		t.Error("the simulator answered no 503: the test proves nothing about cms_etl_http_unavailable")
	}
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range metricNames() {
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("README.md does not document metric %s", name)
		}
		if !slices.ContainsFunc(slices.Collect(mapKeys(families)), func(k string) bool { return strings.HasPrefix(k, name) }) &&
			!strings.HasPrefix(name, "cms_etl_rate_group") && !strings.HasPrefix(name, "cms_etl_queue") && name != "cms_etl_unknown_codes" &&
			!strings.HasPrefix(name, "cms_etl_discover_") {
			t.Errorf("the metrics file lacks %s", name)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// parseTextfile reads Prometheus text format with the library's own
// parser: sample "name{label="v",...}" (labels sorted) -> value; histograms
// as name_count and name_sum.
func parseTextfile(t *testing.T, text string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the metrics file does not parse: %v\n%s", err, text)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// The follower's unit runs etl run --follow with flags etl knows, restarts
// it on failure but not in a tight loop, and passes systemd-analyze verify
// where systemd is installed; its environment file sets every variable the
// unit uses.
func TestFollowerSystemdUnit(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join(repoRoot, "contrib", "systemd", "cms-etl-follow.service"))
	if err != nil {
		t.Fatal(err)
	}
	envFile, err := os.ReadFile(filepath.Join(repoRoot, "contrib", "cms-etl-follow.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "\\\n", " ")
	for _, want := range []string{"--input queue --follow", "Restart=on-failure", "StartLimitBurst=", "EnvironmentFile=/etc/cms-etl/cms-etl-follow.env",
		"WantedBy=multi-user.target", "TimeoutStopSec="} {
		if !strings.Contains(text, want) {
			t.Errorf("cms-etl-follow.service lacks %q", want)
		}
	}
	var start string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "ExecStart=") {
			start = strings.TrimPrefix(line, "ExecStart=")
		}
	}
	var c Config
	fs := newFlagSet("run", "")
	c.registerRun(fs)
	for _, word := range strings.Fields(start) {
		if name, ok := strings.CutPrefix(word, "--"); ok && fs.Lookup(name) == nil {
			t.Errorf("ExecStart uses --%s, which etl run does not have", name)
		}
		for _, v := range regexpVar.FindAllStringSubmatch(word, -1) {
			if !strings.Contains(string(envFile), "\n"+v[1]+"=") {
				t.Errorf("ExecStart uses %s, which the environment file does not set", v[1])
			}
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit is checked statically only")
		return
	}
	tmp := t.TempDir()
	fixed := strings.ReplaceAll(string(unit), "/usr/local/bin/etl", os.Args[0])
	fixed = strings.ReplaceAll(fixed, "/etc/cms-etl/cms-etl-follow.env", filepath.Join(tmp, "env"))
	if err := os.WriteFile(filepath.Join(tmp, "env"), envFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "cms-etl-follow.service"), []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", filepath.Join(tmp, "cms-etl-follow.service")).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

var regexpVar = regexp.MustCompile(`\$\{?([A-Z_]+)\}?`)

// make demo-follow works: a throwaway server, generated calls, a follower;
// it ends on its own with --for, exit 0, and says what it did.
func TestDemoFollow(t *testing.T) {
	t.Parallel()
	if _, err := cluster.FindBinDir(); err != nil {
		skipOrFail(t, "no PostgreSQL server binaries: %v", err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"demo", "--follow", "--for", "12s", "--calls-per-minute", "120", "--listen", "127.0.0.1:0",
		"--log-format", "json", "--summary", "none"}, Env{Stdout: &stdout, Stderr: &stderr})
	if code != ExitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout.String(), tail(stderr.String(), 3000))
	}
	var generated, enriched int
	for _, line := range strings.Split(stdout.String(), "\n") {
		if _, err := fmt.Sscanf(line, "The live demo generated %d calls; %d were enriched", &generated, &enriched); err == nil {
			break
		}
	}
	if generated == 0 || enriched < generated*9/10 {
		t.Fatalf("the demo generated %d calls and enriched %d:\n%s", generated, enriched, stdout.String())
	}
}
