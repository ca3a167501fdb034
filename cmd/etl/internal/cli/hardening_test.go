package cli

// Regression tests of issue 9: faults found by hostile testing.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/internal/cmssim"
	"github.com/cmsetl/cms-etl/internal/pgtest"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load/postgres"
)

// serverLogClean fails when the PostgreSQL server logged a line of the
// test's database containing any of words.
func serverLogClean(t *testing.T, url string, words ...string) {
	t.Helper()
	lines, ok := pgtest.ServerLog(t, url)
	if !ok {
		t.Logf("server log not available (external server): only exit codes and queue states checked")
		return
	}
	for _, l := range lines {
		for _, w := range words {
			if strings.Contains(l, w) {
				t.Errorf("server log: %s", l)
			}
		}
	}
}

// Issue 9, defect 1: the lease extender and the settlement of a commit
// locked the same queue rows in different orders, so queue runs with short
// leases died of "deadlock detected" and left rows running.
func TestQueueRunsWithShortLeasesNeverDeadlock(t *testing.T) {
	t.Parallel()
	const n, workers = 20000, 3
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{NoDataShare: 0.05})
	in, _ := h.writeCSV("calls.csv", n)
	enqueueCSV(t, url, in)

	var wg sync.WaitGroup
	outs := make([]runOutput, workers)
	for i := range outs {
		wg.Go(func() {
			outs[i] = h.run(queueArgs(h, url, "--lease", "5s", "--concurrency", "8", "--rate", "0",
				"--run-id", fmt.Sprintf("worker-%d", i))...)
		})
	}
	wg.Wait()
	var read int64
	for i, o := range outs {
		checkAccounting(t, o)
		if o.code != ExitOK {
			t.Errorf("worker %d exit %d: %v", i, o.code, o.summary["error"])
		}
		read += int64(o.num("rows_read"))
	}
	serverLogClean(t, url, "deadlock detected")
	if t.Failed() {
		t.FailNow()
	}
	checkQueueSettled(t, db, n)
	if read != n {
		t.Errorf("the workers read %d rows together, want each of the %d once", read, n)
	}
	if c := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE attempts <> 1"); c != 0 {
		t.Errorf("%d rows were claimed more than once", c)
	}
}

// Issue 9, defects 2 and 7: a NUL or an invalid UTF-8 byte in a rejected
// row's cells made PostgreSQL refuse cms.call_failure and roll back the
// whole commit on every rerun; the rejects CSV stored the same bytes and
// formula-like cells unescaped.
func TestPoisonedRowsAreRejectedAndRecordedClean(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{})
	long := strings.Repeat("7", 5000)
	in, keys := h.writeCSV("calls.csv", 50,
		"1,1,1763856000000-\x00",       // line 52: NUL
		"1,\xff\xfe,1763856000000-2",   // line 53: invalid UTF-8
		"=cmd|' /C calc'!A0,1,17638-3", // line 54: a formula
		"1,1,"+long,                    // line 55: a long cell
		"-5,1,1763856000000-4",         // line 56: a negative number
	)
	out := filepath.Join(h.dir, "lake")
	args := h.args(in, out, "--rate", "0", "--database-url", url)
	args[4] = "parquet:" + out + ",postgres"
	o := h.run(args...)
	checkAccounting(t, o)
	if o.code != ExitPartial || o.outcome("loaded") != int64(len(keys)) || o.outcome("rejected") != 5 {
		t.Fatalf("exit %d, outcomes %v: want exit 3, %d loaded and 5 rejected; stderr:\n%s", o.code, o.summary["outcomes"], len(keys), tail(o.stderr, 3000))
	}

	rows, err := db.Query(t.Context(), `SELECT line, coalesce(raw_cc_id, ''), coalesce(raw_vdn, ''), coalesce(raw_call_id, ''), reason
		FROM cms.call_failure ORDER BY line`)
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]string
	for rows.Next() {
		var line int64
		var cc, vdn, callID, reason string
		if err := rows.Scan(&line, &cc, &vdn, &callID, &reason); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, []string{fmt.Sprint(line), cc, vdn, callID, reason})
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	wantLines := []string{"52", "53", "54", "55", "56"}
	if len(stored) != len(wantLines) {
		t.Fatalf("cms.call_failure rows %q, want lines %v", stored, wantLines)
	}
	for i, r := range stored {
		if r[0] != wantLines[i] {
			t.Errorf("cms.call_failure row %d is line %s, want %s", i, r[0], wantLines[i])
		}
	}
	if got := stored[0][3]; got != "1763856000000-" {
		t.Errorf("NUL not removed: raw_call_id %q", got)
	}
	if got := stored[1][2]; got != "\uFFFD" {
		t.Errorf("invalid UTF-8 not replaced: raw_vdn %q", got)
	}
	if got := stored[3][3]; len(got) >= len(long) || !strings.Contains(got, "truncated") {
		t.Errorf("long cell stored as %d bytes (%.40q...), want it truncated with a marker", len(got), got)
	}
	if got := stored[3][4]; len(got) > 200 {
		t.Errorf("the reason quotes the whole value: %d bytes", len(got))
	}

	rej := readRejects(t, filepath.Join(out, "_rejects"))
	if len(rej) != 5 {
		t.Fatalf("rejects CSV rows %d, want 5", len(rej))
	}
	for _, r := range rej {
		for col, v := range r {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				t.Errorf("rejects CSV line %s %s holds NUL or invalid UTF-8: %q", r["line"], col, v)
			}
		}
	}
	byLine := map[string]map[string]string{}
	for _, r := range rej {
		byLine[r["line"]] = r
	}
	if got := byLine["54"]["cc_id"]; got != "'=cmd|' /C calc'!A0" {
		t.Errorf("formula cell written as %q, want it prefixed with a quote", got)
	}
	if got := byLine["56"]["cc_id"]; got != "-5" {
		t.Errorf("a negative number written as %q, want it as is", got)
	}
}

// Issue 9, defect 4: a file with CR-only line ends was one huge line, and the
// run exited 2 with the whole file inside one log line.
func TestCROnlyInputExits2WithAShortMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{})
	var b strings.Builder
	b.WriteString("ccId,vdn,callId\r")
	for i := range 50000 {
		fmt.Fprintf(&b, "1,1,1763856000000-%d\r", i)
	}
	in := filepath.Join(h.dir, "mac.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	o := h.run(h.args(in, filepath.Join(h.dir, "lake"))...)
	if o.code != ExitUsage || !strings.Contains(o.stderr, "line endings are CR only") || len(o.stderr) > 2000 {
		t.Fatalf("exit %d, %d bytes of stderr: %.500s; want exit 2 and a short message naming CR-only line endings", o.code, len(o.stderr), o.stderr)
	}
}

// Issue 9, defect 6: with another session holding a lock on cms.call_info,
// a run told to stop with --grace 3s exited 34.6 s later: the bound was the
// 2-minute commit timeout, longer than systemd's stop timeout. The last
// commit gets --grace plus the commit allowance; what it could not commit
// is left for the next run, the queue rows handed back at once.
func TestSIGTERMWithABlockedCommitExitsWithinTheBound(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 10 * time.Millisecond})
	in, keys := h.writeCSV("calls.csv", 3000)
	enqueueCSV(t, url, in)
	const grace = time.Second
	cmd, stderr := h.subprocess(queueArgs(h, url, "--rate", "200", "--grace", grace.String(), "--run-id", "stopped")...)
	waitFor(t, func() bool { return count(t, db, "SELECT count(*) FROM cms.call_info") >= 50 })

	lock, err := db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.WithoutCancel(t.Context()))
	if _, err := lock.Exec(t.Context(), "LOCK TABLE cms.call_info IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return count(t, db, "SELECT count(*) FROM pg_locks WHERE relation = 'cms.call_info'::regclass AND NOT granted") > 0
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	bound := grace + pipeline.DefaultCommitAllowance + 8*time.Second // + handing rows back, the run record, a slow machine
	select {
	case <-exited:
	case <-time.After(bound + 20*time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	took := time.Since(signalled)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	o := parseRun(t, cmd.ProcessState.ExitCode(), stderr.String())
	if took > bound {
		t.Fatalf("exited %s after SIGTERM, want within %s; stderr:\n%s", took.Round(time.Millisecond), bound, tail(stderr.String(), 3000))
	}
	checkAccounting(t, o)
	if o.code != ExitAborted || !strings.Contains(fmt.Sprint(o.summary["error"]), "commit cut off") {
		t.Fatalf("exit %d, error %v; want exit 1 and the cut-off commit reported", o.code, o.summary["error"])
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'running'"); n != 0 {
		t.Errorf("%d queue rows still running: the run did not hand them back", n)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.call_queue WHERE status = 'pending' AND attempts > 0"); n != 0 {
		t.Errorf("%d rows handed back with their claim counted", n)
	}
	if n := count(t, db, "SELECT count(*) FROM cms.etl_run WHERE id = 'stopped' AND status = 'aborted' AND finished_at IS NOT NULL"); n != 1 {
		t.Errorf("the run's cms.etl_run row is not finished as aborted")
	}

	if err := lock.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	rerun := h.run(queueArgs(h, url, "--rate", "0")...)
	checkAccounting(t, rerun)
	if rerun.code != ExitOK {
		t.Fatalf("rerun exit %d:\n%s", rerun.code, tail(rerun.stderr, 3000))
	}
	checkQueueSettled(t, db, int64(len(keys)))
}

// Issue 9, defect 5: cms.etl_run rows of runs killed with -9 stayed
// 'running' forever. Every run with a database (here a queue run writing
// Parquet) marks the rows of runs that are provably gone as abandoned, and
// leaves the rows of live runs alone.
func TestGoneRunsAreMarkedAbandoned(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := newHarness(t, cmssim.Config{Latency: 20 * time.Millisecond})
	in, _ := h.writeCSV("calls.csv", 400)
	args := h.args(in, filepath.Join(h.dir, "lake"), "--rate", "20", "--database-url", url, "--run-id", "killed")
	args[4] = "postgres"
	cmd, stderr := h.subprocess(args...)
	waitFor(t, func() bool { return count(t, db, "SELECT count(*) FROM cms.call_info") >= 5 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := count(t, db, "SELECT count(*) FROM cms.etl_run WHERE id = 'killed' AND status = 'running'"); n != 1 {
		t.Fatalf("the killed run's row is not running: %s", tail(stderr.String(), 2000))
	}

	// A live run elsewhere: its lock is held, its row says running.
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	alive, err := postgres.LockRun(t.Context(), cfg, "alive")
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Release(context.WithoutCancel(t.Context()))
	if err := postgres.StartRun(t.Context(), db, postgres.RunRecord{ID: "alive", StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	next := queueArgs(h, url, "--run-id", "next")
	next[4] = "parquet:" + filepath.Join(h.dir, "queue-lake") // the database holds only the queue
	o := h.run(next...)
	if o.code != ExitOK {
		t.Fatalf("queue run exit %d:\n%s", o.code, tail(o.stderr, 3000))
	}
	states := map[string]string{}
	rows, err := db.Query(t.Context(), "SELECT id, status || CASE WHEN finished_at IS NULL THEN '' ELSE ',finished' END FROM cms.etl_run")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		if err := rows.Scan(&id, &st); err != nil {
			t.Fatal(err)
		}
		states[id] = st
	}
	want := map[string]string{"killed": "abandoned,finished", "alive": "running", "next": "succeeded,finished"}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("cms.etl_run: %v, want %v", states, want)
	}
	if !strings.Contains(o.stderr, `"abandoned_run":"killed"`) {
		t.Errorf("the run did not log the abandoned run:\n%s", tail(o.stderr, 2000))
	}
}

// Issue 9, defect 7: a password in --api-url came back in the usage error.
// User info is refused and the URL is not echoed when it may hold one.
func TestAPIURLUserInfoIsRefusedWithoutEchoingIt(t *testing.T) {
	t.Setenv("CMS_SK", "the-sk")
	for _, u := range []string{
		"https://ak:hunter2@10.0.0.5:28443",
		"https://hunter2@10.0.0.5:28443",
		"ak:hunter2@10.0.0.5:28443",
		"ftp://ak:hunter2@10.0.0.5",
		"https://ak:hunter2@10.0.0.5:bad port",
	} {
		for _, cmd := range []string{"run", "ping"} {
			args := []string{cmd, "--api-url", u, "--ak", "ak"}
			if cmd == "run" {
				args = append(args, "--input", "csv:a.csv", "--output", "parquet:x")
			}
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), args, Env{Stdout: &stdout, Stderr: &stderr})
			if code != ExitUsage || !strings.Contains(stderr.String(), "--api-url") {
				t.Errorf("%s --api-url %s: exit %d, stderr %q; want exit 2 naming --api-url", cmd, u, code, stderr.String())
			}
			if strings.Contains(stderr.String()+stdout.String(), "hunter2") {
				t.Errorf("%s --api-url %s: the password was echoed: %s", cmd, u, stderr.String())
			}
		}
	}
}

// Issue 9, defect 7: secrets given where other users can read them are
// warned about: a --database-url holding a password (ps shows it), an
// --sk-file open to group or others (as ssh does).
func TestSecretWarnings(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("CMS_SK", "")
	dir := t.TempDir()
	open := filepath.Join(dir, "sk-open")
	private := filepath.Join(dir, "sk-private")
	for path, mode := range map[string]os.FileMode{open: 0o644, private: 0o600} {
		if err := os.WriteFile(path, []byte("the-sk\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		args  []string
		warns []string
	}{
		{"password in flag, open sk file",
			[]string{"run", "--sk-file", open, "--database-url", "postgres://etl:pgsecret@127.0.0.1:1/w"},
			[]string{"--database-url holds a password", "DATABASE_URL", "--sk-file " + open + " is open to group or others (mode 0644)", "chmod 600"}},
		{"keyword form", []string{"run", "--sk-file", private, "--database-url", "host=127.0.0.1 port=1 password=pgsecret"},
			[]string{"--database-url holds a password"}},
		{"no password, private sk file", []string{"run", "--sk-file", private, "--database-url", "postgres://etl@127.0.0.1:1/w"}, nil},
		{"migrate", []string{"migrate", "--database-url", "postgres://etl:pgsecret@127.0.0.1:1/w"}, []string{"--database-url holds a password"}},
		{"ping", []string{"ping", "--sk-file", open, "--api-url", "https://127.0.0.1:1", "--ak", "ak", "--request-timeout", "100ms"},
			[]string{"is open to group or others"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[0] == "run" {
				args = append(args, "--input", "csv:"+filepath.Join(dir, "missing.csv"), "--output", "postgres",
					"--api-url", "https://127.0.0.1:1", "--ak", "ak", "--log-format", "json")
			}
			var stdout, stderr bytes.Buffer
			Main(t.Context(), args, Env{Stdout: &stdout, Stderr: &stderr})
			out := stderr.String()
			for _, w := range tt.warns {
				if !strings.Contains(out, w) {
					t.Errorf("stderr lacks %q:\n%s", w, out)
				}
			}
			if tt.warns == nil && strings.Contains(out, `"level":"warn"`) {
				t.Errorf("unexpected warning:\n%s", out)
			}
			if strings.Contains(out, "pgsecret") || strings.Contains(out, "the-sk") {
				t.Errorf("a secret appeared on stderr:\n%s", out)
			}
		})
	}
}
