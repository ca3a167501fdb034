package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms/authv2"
	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/outcome"
	"github.com/cmsetl/cms-etl/load/parquet"
)

// The test binary doubles as the etl command for tests that must kill or
// signal a real process.
const beMainEnv = "ETL_TEST_BE_MAIN"

var testCreds = authv2.Credentials{AK: "testAK", SK: "test-secret-SK-value"}

type harness struct {
	t      *testing.T
	sim    *cmssim.Server
	simCfg cmssim.Config
	dir    string
	skFile string
}

func newHarness(t *testing.T, cfg cmssim.Config) *harness {
	t.Helper()
	cfg.TLS = true
	cfg.TrackCallIDs = true
	if cfg.Credentials == (authv2.Credentials{}) {
		cfg.Credentials = testCreds
	}
	if cfg.Seed == 0 {
		cfg.Seed = 7
	}
	sim, sk := benchSim(t, cfg)
	return &harness{t: t, sim: sim, simCfg: cfg, dir: t.TempDir(), skFile: sk}
}

// writeCSV writes n valid keys (callIds seq..seq+n) plus extra raw lines.
func (h *harness) writeCSV(name string, n int, extra ...string) (string, []extract.Key) {
	h.t.Helper()
	var b strings.Builder
	b.WriteString("ccId,vdn,callId\n")
	keys := make([]extract.Key, n)
	for i := range n {
		keys[i] = extract.Key{CCID: 1, VDN: 1 + i%3, CallID: fmt.Sprintf("%d-%d", 1763856000000+int64(i)*61000, 1000+i)}
		fmt.Fprintf(&b, "%d,%d,%s\n", keys[i].CCID, keys[i].VDN, keys[i].CallID)
	}
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p, keys
}

func (h *harness) args(in, out string, more ...string) []string {
	return benchArgs(h.sim, h.skFile, in, out, append([]string{"--request-timeout", "2s"}, more...)...)
}

type runOutput struct {
	code    int
	stderr  string
	summary map[string]any
}

func (h *harness) run(args ...string) runOutput {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(h.t.Context(), args, Env{Stdout: &stdout, Stderr: &stderr, Now: testNow})
	return parseRun(h.t, code, stderr.String())
}

func parseRun(t testing.TB, code int, stderr string) runOutput {
	t.Helper()
	if strings.Contains(stderr, testCreds.SK) {
		t.Errorf("the SK appeared in the output")
	}
	out := runOutput{code: code, stderr: stderr}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"run_summary"`) {
			continue
		}
		if err := json.Unmarshal([]byte(line), &out.summary); err != nil {
			t.Fatalf("summary event is not JSON: %v\n%s", err, line)
		}
	}
	return out
}

func (o runOutput) outcome(name string) int64 {
	m, _ := o.summary["outcomes"].(map[string]any)
	f, _ := m[name].(float64)
	return int64(f)
}

func (o runOutput) num(name string) float64 {
	f, _ := o.summary[name].(float64)
	return f
}

// expected counts the simulator's plan for keys (outcome names of cmssim).
func (h *harness) expected(keys []extract.Key) map[string]int64 {
	m := map[string]int64{}
	for _, k := range keys {
		m[cmssim.PlanFor(h.simCfg, k).Outcome]++
	}
	return m
}

func checkAccounting(t *testing.T, o runOutput) {
	t.Helper()
	if o.summary == nil {
		t.Fatalf("no run_summary event (exit %d); stderr:\n%s", o.code, o.stderr)
	}
	var total int64
	for _, name := range []string{"loaded", "no_data", "failed", "rejected", "duplicate", "already_loaded", "unprocessed"} {
		total += o.outcome(name)
	}
	if read := int64(o.num("rows_read")); total != read {
		t.Fatalf("outcomes add up to %d, rows read %d: %v", total, read, o.summary["outcomes"])
	}
}

func committed(t *testing.T, dir string) (map[extract.Digest]struct{}, int) {
	t.Helper()
	set, st, err := parquet.CommittedKeys(t.Context(), dir, nil)
	if err != nil {
		t.Fatalf("read committed keys: %v", err)
	}
	n := st.Rows
	defer set.Close()
	keys := make(map[extract.Digest]struct{}, set.Len())
	for d := range set.All() {
		keys[d] = struct{}{}
	}
	return keys, n
}

func TestCSVToParquetEndToEndAndRerun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{NoDataShare: 0.1, PermanentShare: 0.05, TransientShare: 0.1, TransientAttempts: 1,
		TransientKinds: []string{"5xx", "truncated", "0100001", "drop"}})
	in, keys := h.writeCSV("calls.csv", 300,
		"1,9999,1763856000000-1", // vdn out of range
		"1,1,abc-12",             // bad callId
		"1,1",                    // missing field
		"1,1,1763856000000-1000", // duplicate of the first row
	)
	out := filepath.Join(h.dir, "lake")
	metrics := filepath.Join(h.dir, "etl.prom")
	want := h.expected(keys)

	first := h.run(h.args(in, out, "--rate", "0", "--concurrency", "8", "--metrics-file", metrics)...)
	checkAccounting(t, first)
	if first.code != ExitPartial {
		t.Fatalf("exit %d, want %d (rows were rejected); stderr:\n%s", first.code, ExitPartial, first.stderr)
	}
	if got := first.outcome("loaded"); got != want["ok"] {
		t.Errorf("loaded %d, want %d (simulator plan %v)", got, want["ok"], want)
	}
	if got := first.outcome("no_data"); got != want["no_data"] {
		t.Errorf("no_data %d, want %d", got, want["no_data"])
	}
	if got := first.outcome("failed"); got != want["permanent"] {
		t.Errorf("failed %d, want %d permanent failures (transient ones recover)", got, want["permanent"])
	}
	if first.outcome("rejected") != 3 || first.outcome("duplicate") != 1 {
		t.Errorf("rejected %d duplicate %d, want 3 and 1", first.outcome("rejected"), first.outcome("duplicate"))
	}
	if first.num("retries") < 1 {
		t.Errorf("no retries reported although transient faults were injected")
	}
	got, rows := committed(t, out)
	if int64(rows) != want["ok"] || len(got) != rows {
		t.Fatalf("parquet holds %d rows (%d distinct), want %d", rows, len(got), want["ok"])
	}

	// Rejects file: failed + rejected rows, with line numbers for the bad input.
	rej := readRejects(t, filepath.Join(out, "_rejects"))
	if int64(len(rej)) != first.outcome("failed")+first.outcome("rejected") {
		t.Errorf("rejects file has %d rows, want %d", len(rej), first.outcome("failed")+first.outcome("rejected"))
	}
	var sawLine bool
	for _, r := range rej {
		if r["line"] == "303" && strings.Contains(r["reason"], "callId") {
			sawLine = true
		}
	}
	if !sawLine {
		t.Errorf("rejects file lacks line 303 (bad callId) with a reason naming callId: %v", rej)
	}

	m, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatalf("metrics file: %v", err)
	}
	if !strings.Contains(string(m), fmt.Sprintf(`cms_etl_rows{outcome="loaded"} %d`, want["ok"])) {
		t.Errorf("metrics file lacks the loaded count:\n%s", m)
	}

	// Rerun: nothing committed is queried again, nothing is written twice.
	before := h.sim.Stats().CallIDRequests
	second := h.run(h.args(in, out, "--rate", "0")...)
	checkAccounting(t, second)
	if second.outcome("loaded") != 0 || second.outcome("already_loaded") != want["ok"] {
		t.Errorf("rerun: loaded %d already_loaded %d, want 0 and %d", second.outcome("loaded"), second.outcome("already_loaded"), want["ok"])
	}
	after := h.sim.Stats().CallIDRequests
	for _, k := range keys {
		if _, done := got[k.Digest()]; done && after[simKey(k)] != before[simKey(k)] {
			t.Errorf("rerun queried %s again although its row is committed", k)
		}
	}
	if _, rows2 := committed(t, out); rows2 != rows {
		t.Errorf("rerun changed the committed row count from %d to %d", rows, rows2)
	}

	// Another file overlapping the first: its committed keys are skipped and
	// only those are held in memory (the resume log counts them), the rest
	// is queried.
	var overlap strings.Builder
	overlap.WriteString("ccId,vdn,callId\n")
	var inBoth int64
	for _, k := range keys[:60] {
		fmt.Fprintf(&overlap, "%d,%d,%s\n", k.CCID, k.VDN, k.CallID)
		if _, done := got[k.Digest()]; done {
			inBoth++
		}
	}
	for i := range 20 {
		fmt.Fprintf(&overlap, "1,1,%d-%d\n", 1763900000000+int64(i), 9000+i)
	}
	next := filepath.Join(h.dir, "next.csv")
	if err := os.WriteFile(next, []byte(overlap.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	before = h.sim.Stats().CallIDRequests
	third := h.run(h.args(next, out, "--rate", "0")...)
	checkAccounting(t, third)
	if third.outcome("already_loaded") != inBoth {
		t.Errorf("overlapping file: already_loaded %d, want %d", third.outcome("already_loaded"), inBoth)
	}
	if third.outcome("loaded")+third.outcome("no_data")+third.outcome("failed") != 80-inBoth {
		t.Errorf("overlapping file: %d rows queried to an end, want %d", third.outcome("loaded")+third.outcome("no_data")+third.outcome("failed"), 80-inBoth)
	}
	after = h.sim.Stats().CallIDRequests
	for _, k := range keys[:60] {
		if _, done := got[k.Digest()]; done && after[simKey(k)] != before[simKey(k)] {
			t.Errorf("overlapping file queried %s again although its row is committed", k)
		}
	}
	resumed := regexp.MustCompile(fmt.Sprintf(`"rows":%d,"files":\d+,"files_skipped":\d+,"rows_read":%d`, inBoth, rows))
	if !resumed.MatchString(third.stderr) {
		t.Errorf("resume log does not hold only this input's %d committed keys of %d (%s):\n%s", inBoth, rows, resumed, tail(third.stderr, 3000))
	}
}

func simKey(k extract.Key) string { return fmt.Sprintf("%d/%d/%s", k.CCID, k.VDN, k.CallID) }

func readRejects(t *testing.T, dir string) []map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	var out []map[string]string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatalf("rejects %s: %v", f, err)
		}
		for _, r := range recs[1:] {
			m := map[string]string{}
			for i, h := range recs[0] {
				m[h] = r[i]
			}
			out = append(out, m)
		}
	}
	return out
}

func TestFatalAnswerStopsTheRunAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{Credentials: authv2.Credentials{AK: testCreds.AK, SK: "another-SK"}})
	in, _ := h.writeCSV("calls.csv", 50)
	o := h.run(h.args(in, filepath.Join(h.dir, "lake"), "--rate", "2")...)
	checkAccounting(t, o)
	if o.code != ExitAborted {
		t.Fatalf("exit %d, want %d on HTTP 401", o.code, ExitAborted)
	}
	if n := h.sim.Stats().Requests; n != 1 {
		t.Errorf("simulator saw %d requests, want exactly 1: a 401 must stop the run at once", n)
	}
	if !strings.Contains(o.stderr, "401") {
		t.Errorf("the summary does not say why:\n%s", o.stderr)
	}
	if o.outcome("failed") != 0 {
		t.Errorf("rows counted failed on a fatal stop; they belong to the next run")
	}
}

// 429 with Retry-After: the pool pauses for the Retry-After and cuts its
// rate once per event (the answers of requests already in flight are part
// of it), retries every throttled call, and every row loads.
func TestThrottlingPausesAndCutsOncePerEventAndEveryRowLoads(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{RateLimit: 40, RateBurst: 5, RetryAfter: time.Second})
	in, keys := h.writeCSV("calls.csv", 120)
	metrics := filepath.Join(h.dir, "etl.prom")
	o := h.run(h.args(in, filepath.Join(h.dir, "lake"), "--rate", "100", "--burst", "10", "--concurrency", "8",
		"--max-attempts", "8", "--metrics-file", metrics)...)
	checkAccounting(t, o)
	if o.code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", o.code, o.stderr)
	}
	if o.outcome("loaded")+o.outcome("no_data") != int64(len(keys)) {
		t.Errorf("not every row loaded: %v", o.summary["outcomes"])
	}
	events, cuts, pauses, throttled := o.num("throttle_events"), o.num("rate_cuts"), o.num("rate_pauses"), o.num("http_429")
	if throttled < 1 || events < 1 || cuts < 1 || pauses < 1 {
		t.Fatalf("429s %v, throttle events %v, cuts %v, pauses %v: want each at least 1", throttled, events, cuts, pauses)
	}
	if cuts > events || events > throttled {
		t.Errorf("429s %v, events %v, cuts %v: at most one cut per event and one event per 429", throttled, events, cuts)
	}
	if final := o.num("rate_final"); final <= 0 || final > 100 {
		t.Errorf("final rate %v, want within (0, 100]", final)
	}
	if o.num("retry_budget_exhausted") != 0 {
		t.Errorf("%v throttled calls refused a retry; a throttle's retry is not charged to the budget", o.num("retry_budget_exhausted"))
	}
	m, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		fmt.Sprintf("cms_etl_throttle_events %v", events), fmt.Sprintf("cms_etl_rate_cuts %v", cuts),
		fmt.Sprintf("cms_etl_rate_pauses %v", pauses), "cms_etl_rate_final ", "cms_etl_retries_transient 0",
		"cms_etl_retry_budget_exhausted 0",
	} {
		if !strings.Contains(string(m), line) {
			t.Errorf("metrics file lacks %q:\n%s", line, m)
		}
	}
}

func TestSecondRunOnTheSameDirectoryExits1(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{Latency: 50 * time.Millisecond})
	in, _ := h.writeCSV("calls.csv", 200)
	out := filepath.Join(h.dir, "lake")
	cmd, stderr := h.subprocess(h.args(in, out, "--rate", "20")...)
	waitFor(t, func() bool {
		_, err := os.Stat(filepath.Join(out, ".etl.lock"))
		return err == nil && h.sim.Stats().Requests > 0
	})
	o := h.run(h.args(in, out)...)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if o.code != ExitAborted {
		t.Fatalf("second run exit %d, want 1; stderr:\n%s\nfirst run:\n%s", o.code, o.stderr, stderr.String())
	}
	if !strings.Contains(o.stderr, "in use") {
		t.Errorf("message does not say the directory is in use:\n%s", o.stderr)
	}
}

func TestKillDashNineThenRerunLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{Latency: 5 * time.Millisecond, NoDataShare: 0.1})
	in, keys := h.writeCSV("calls.csv", 400)
	out := filepath.Join(h.dir, "lake")
	args := h.args(in, out, "--rate", "100", "--commit-interval", "200ms", "--commit-rows", "25")
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool {
		set, st, err := parquet.CommittedKeys(t.Context(), out, nil)
		if err == nil {
			set.Close()
		}
		return st.Rows >= 50
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	firstKeys, firstRows := committed(t, out)
	if firstRows >= int(h.expected(keys)["ok"]) {
		skipOrFail(t, "run finished before the kill (%d rows); nothing to resume: %s", firstRows, stderr.String())
	}
	before := h.sim.Stats().CallIDRequests

	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitOK {
		t.Fatalf("rerun exit %d; stderr:\n%s", o.code, o.stderr)
	}
	all, rows := committed(t, out)
	want := h.expected(keys)["ok"]
	if int64(rows) != want || len(all) != rows {
		t.Fatalf("after rerun parquet holds %d rows (%d distinct), want %d exactly once each", rows, len(all), want)
	}
	after := h.sim.Stats().CallIDRequests
	for _, k := range keys {
		if _, ok := firstKeys[k.Digest()]; ok && after[simKey(k)] != before[simKey(k)] {
			t.Errorf("%s was committed before the crash but queried again", k)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, "*", "*.tmp"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left after the rerun: %v", leftovers)
	}
}

func TestInterruptCommitsWhatIsDoneAndRerunFinishes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{Latency: 20 * time.Millisecond})
	in, keys := h.writeCSV("calls.csv", 300)
	out := filepath.Join(h.dir, "lake")
	args := h.args(in, out, "--rate", "50", "--grace", "5s")
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool { return h.sim.Stats().Requests >= 40 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	o := parseRun(t, code, stderr.String())
	if code != ExitAborted {
		t.Fatalf("interrupted run exit %d (%v), want 1; stderr:\n%s", code, err, stderr.String())
	}
	checkAccounting(t, o)
	_, rows := committed(t, out)
	if int64(rows) != o.outcome("loaded") || rows == 0 {
		t.Fatalf("interrupted run reported %d loaded but committed %d rows", o.outcome("loaded"), rows)
	}
	o2 := h.run(args...)
	checkAccounting(t, o2)
	if o2.code != ExitOK {
		t.Fatalf("rerun exit %d:\n%s", o2.code, o2.stderr)
	}
	if _, all := committed(t, out); all != len(keys) {
		t.Fatalf("after rerun %d rows committed, want %d", all, len(keys))
	}
}

// The demo's bad rows and failing calls are what it shows: it exits 0 when
// every row ended as planned, says so in one line and where to see them,
// and again when run a second time on the same directory.
func TestDemoExitsZeroWhenItDidWhatItShows(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "demo-out")
	for i, wantLoaded := range []bool{true, false} {
		var stdout, stderr bytes.Buffer
		code := Main(t.Context(), []string{"demo", "--input", "../../../../testdata/calls.csv", "--out", out, "--rate", "0", "--log-format", "json"},
			Env{Stdout: &stdout, Stderr: &stderr})
		o := parseRun(t, code, stderr.String())
		checkAccounting(t, o)
		// testdata/calls.csv has 3 bad rows and 2 repeats; the simulator fails some calls.
		if code != ExitOK || o.outcome("rejected") != 3 || o.outcome("duplicate") != 2 || o.outcome("failed") == 0 {
			t.Fatalf("demo #%d exit %d, outcomes %v; stderr:\n%s", i+1, code, o.summary["outcomes"], stderr.String())
		}
		if loaded := o.outcome("loaded") > 0; loaded != wantLoaded || !wantLoaded && o.outcome("already_loaded") == 0 {
			t.Errorf("demo #%d: outcomes %v; the second run finds the first one's rows already loaded", i+1, o.summary["outcomes"])
		}
		rejects := filepath.Join(out, "_rejects", o.summary["run"].(string)+".csv")
		line := fmt.Sprintf("its %d rejected and %d failed rows are part of the demonstration", o.outcome("rejected"), o.outcome("failed"))
		if !strings.Contains(stdout.String(), line) || !strings.Contains(stdout.String(), rejects) {
			t.Errorf("demo #%d: stdout does not say %q and where (%s):\n%s", i+1, line, rejects, stdout.String())
		}
		if n := len(readRejects(t, filepath.Join(out, "_rejects"))); i == 0 && int64(n) != o.outcome("rejected")+o.outcome("failed") {
			t.Errorf("rejects file has %d rows, want %d", n, o.outcome("rejected")+o.outcome("failed"))
		}
	}
	if _, n := committed(t, out); n == 0 {
		t.Fatal("demo committed no rows")
	}
}

// The demo exits non-zero only when the demo itself broke.
func TestDemoExitsOneWhenItBroke(t *testing.T) {
	t.Parallel()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), []string{"demo", "--input", "../../../../testdata/calls.csv", "--out", notADir, "--rate", "0"},
		Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: true})
	if code != ExitAborted || !strings.Contains(stderr.String(), "etl demo: ") {
		t.Fatalf("demo into a regular file: exit %d, want 1 with a refusal; stderr:\n%s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "demo worked") {
		t.Errorf("a broken demo claims it worked:\n%s", stdout.String())
	}
}

func TestDemoPlan(t *testing.T) {
	t.Parallel()
	plan, err := demoPlan("../../../../testdata/calls.csv", cmssim.Config{Credentials: testCreds, PermanentShare: 0.02, NoDataShare: 0.05, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range plan {
		total += n
	}
	// testdata/README.md: 300 rows, 3 bad, 2 repeats.
	if total != 300 || plan[outcome.Rejected] != 3 || plan[outcome.Duplicate] != 2 || plan[outcome.Failed] == 0 || plan[outcome.NoData] == 0 {
		t.Fatalf("plan %v", plan)
	}
	sum := func(status string, code int, counts outcome.Counts) *Summary {
		return &Summary{Status: status, ExitCode: code, Counts: counts, Error: "boom"}
	}
	asPlanned := outcome.Counts{}
	for o, n := range plan {
		asPlanned[o] = n
	}
	rerun := outcome.Counts{}
	for o, n := range plan {
		rerun[o] = n
	}
	rerun[outcome.AlreadyLoaded], rerun[outcome.Loaded] = plan[outcome.Loaded]-1, 1
	fewer := outcome.Counts{}
	for o, n := range plan {
		fewer[o] = n
	}
	fewer[outcome.Failed]--
	fewer[outcome.Loaded]++
	for _, tc := range []struct {
		name string
		sum  *Summary
		ok   bool
	}{
		{"as planned", sum("partial", ExitPartial, asPlanned), true},
		{"rerun", sum("partial", ExitPartial, rerun), true},
		{"an outcome differs", sum("partial", ExitPartial, fewer), false},
		{"aborted", sum("aborted", ExitAborted, asPlanned), false},
	} {
		if err := plan.check(tc.sum); (err == nil) != tc.ok {
			t.Errorf("%s: check = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// subprocess starts the test binary as etl with args.
func (h *harness) subprocess(args ...string) (*exec.Cmd, *bytes.Buffer) {
	h.t.Helper()
	cmd := exec.CommandContext(h.t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), beMainEnv+"=1", testClockEnv())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &stderr
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting for the run to get going")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// skipOrFail skips a test whose precondition did not happen, except in CI,
// where a silent skip would hide that the test checked nothing.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// An input that can be read only once (a named pipe, like csv:<(zcat ...))
// is not read ahead: the rerun still skips every committed key.
func TestRerunFromPipeSkipsCommittedKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{})
	in, keys := h.writeCSV("calls.csv", 40)
	out := filepath.Join(h.dir, "lake")
	first := h.run(h.args(in, out, "--rate", "0")...)
	if first.code != ExitOK || first.outcome("loaded") != int64(len(keys)) {
		t.Fatalf("first run: exit %d, loaded %d; stderr:\n%s", first.code, first.outcome("loaded"), tail(first.stderr, 3000))
	}
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(h.dir, "calls.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			t.Error(err)
		}
	}()
	before := h.sim.Stats().CallIDRequests
	second := h.run(h.args(fifo, out, "--rate", "0")...)
	checkAccounting(t, second)
	if second.code != ExitOK || second.outcome("already_loaded") != int64(len(keys)) {
		t.Fatalf("rerun from a pipe: exit %d, already_loaded %d, want 0 and %d; stderr:\n%s",
			second.code, second.outcome("already_loaded"), len(keys), tail(second.stderr, 3000))
	}
	after := h.sim.Stats().CallIDRequests
	for _, k := range keys {
		if after[simKey(k)] != before[simKey(k)] {
			t.Errorf("rerun from a pipe queried %s again", k)
		}
	}
}

// Call IDs start with the call's time, so a lake's older files cannot hold a
// newer input's keys: their footers' statistics say so and they are not read.
func TestResumeSkipsFilesOutsideTheInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{})
	old, _ := h.writeCSV("old.csv", 30)
	out := filepath.Join(h.dir, "lake")
	if first := h.run(h.args(old, out, "--rate", "0")...); first.code != ExitOK {
		t.Fatalf("first run: exit %d; stderr:\n%s", first.code, tail(first.stderr, 3000))
	}
	var b strings.Builder
	b.WriteString("ccId,vdn,callId\n")
	for i := range 20 {
		fmt.Fprintf(&b, "1,1,%d-%d\n", 1800000000000+int64(i)*1000, 500+i)
	}
	next := filepath.Join(h.dir, "next.csv")
	if err := os.WriteFile(next, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	second := h.run(h.args(next, out, "--rate", "0")...)
	checkAccounting(t, second)
	if second.code != ExitOK || second.outcome("loaded")+second.outcome("no_data") != 20 {
		t.Fatalf("second run: exit %d, outcomes %v; stderr:\n%s", second.code, second.summary["outcomes"], tail(second.stderr, 3000))
	}
	skipped := regexp.MustCompile(`"rows":0,"files":(\d+),"files_skipped":(\d+),"rows_read":0`).FindStringSubmatch(second.stderr)
	if skipped == nil || skipped[1] != skipped[2] || skipped[1] == "0" {
		t.Errorf("the older files were read (want every file skipped, nothing read):\n%s", tail(second.stderr, 3000))
	}
}
