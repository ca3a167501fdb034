package cli

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/internal/cmssim"
)

const (
	repoRoot = "../../../.."
	// wrapperInstalled is where README.md and the systemd unit install the
	// cron wrapper.
	wrapperInstalled = "/usr/local/lib/cms-etl/cms-etl-nightly"
)

var wrapperSource = filepath.Join(repoRoot, "contrib", "cron", "cms-etl-nightly")

// cronBlocks returns the lines of README.md's ```crontab blocks.
func cronBlocks(t *testing.T) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	var cur []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```crontab":
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// cronField checks one time field of a crontab line against its range.
func cronField(f string, lo, hi int) bool {
	for _, part := range strings.Split(f, ",") {
		rng, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return false
			}
		}
		if rng == "*" {
			continue
		}
		a, b, isRange := strings.Cut(rng, "-")
		vals := []string{a}
		if isRange {
			vals = append(vals, b)
		}
		for _, v := range vals {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				return false
			}
		}
	}
	return true
}

var cronEnvLine = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\s*=`)

// Each crontab line in README.md installs as written: five time fields and a
// command on one line (cron has no continuation lines, and an unescaped %
// ends the command), and the command is the wrapper shipped in contrib/.
func TestREADMECrontabLinesInstallAsWritten(t *testing.T) {
	t.Parallel()
	blocks := cronBlocks(t)
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```crontab block")
	}
	ranges := [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}}
	var jobs int
	for _, block := range blocks {
		for _, line := range block {
			trimmed := strings.TrimSpace(line)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") || cronEnvLine.MatchString(trimmed) {
				continue
			}
			jobs++
			if strings.HasSuffix(trimmed, `\`) {
				t.Errorf("crontab line continues on the next line (cron has no continuation): %q", line)
			}
			fields := strings.Fields(trimmed)
			if len(fields) < 6 {
				t.Errorf("crontab line has fewer than five time fields and a command: %q", line)
				continue
			}
			for i, r := range ranges {
				if !cronField(fields[i], r[0], r[1]) {
					t.Errorf("crontab line: time field %d %q is not valid in %d..%d: %q", i+1, fields[i], r[0], r[1], line)
				}
			}
			command := strings.Join(fields[5:], " ")
			if strings.Contains(strings.ReplaceAll(command, `\%`, ""), "%") {
				t.Errorf("crontab command has an unescaped %% (cron turns it into a newline): %q", line)
			}
			if fields[5] != wrapperInstalled {
				t.Errorf("crontab command %q is not the shipped wrapper %s", fields[5], wrapperInstalled)
			}
		}
	}
	if jobs == 0 {
		t.Fatal("README.md's crontab blocks hold no job line")
	}
}

func TestCronFieldRanges(t *testing.T) {
	t.Parallel()
	for f, ok := range map[string]bool{"15": true, "*": true, "*/5": true, "1-5": true, "1,3,5": true, "60": false, "-1": false, "a": false, "*/0": false, `*\`: false} {
		if cronField(f, 0, 59) != ok {
			t.Errorf("cronField(%q) = %v, want %v", f, !ok, ok)
		}
	}
}

// The cron wrapper runs etl with --sk-file and --metrics-file, keeps its log
// file JSON lines only, and alerts (syslog at err, and stdout for cron's
// mail) on every non-zero exit except 3. It runs the real etl (this test
// binary) against the simulator, under /bin/sh.
func TestCronWrapperAlertsOnEveryFailureButPartial(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{})
	good, _ := h.writeCSV("good.csv", 10)
	bad, _ := h.writeCSV("bad.csv", 10, "1,9999,1763856000000-1")

	// A logger that records what it was asked to send.
	bin := filepath.Join(h.dir, "bin")
	syslog := filepath.Join(h.dir, "syslog")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "logger"), []byte("#!/bin/sh\necho \"$*\" >> "+syslog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(h.dir, "cms-etl.env")
	envText := "CMS_API_URL=" + h.sim.URL() + "\nCMS_AK=" + testCreds.AK + "\nCMS_ETL_SK_FILE=" + h.skFile +
		"\nCMS_ETL_ARGS=\"--ca-file " + h.sim.CAFile() + " --rate 0\"\n"
	if err := os.WriteFile(envFile, []byte(envText), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, input, ak string
		code            int
		alert           bool
	}{
		{"success", "csv:" + good, "", ExitOK, false},
		{"partial", "csv:" + bad, "", ExitPartial, false},
		{"missing input", "csv:" + filepath.Join(h.dir, "2026-11-23.csv"), "", ExitUsage, true},
		{"rejected signature", "csv:" + good, "wrongAK", ExitAborted, true},
	}
	for i, tc := range tests {
		out := filepath.Join(h.dir, "lake"+strconv.Itoa(i))
		logFile := filepath.Join(h.dir, "log"+strconv.Itoa(i)+".json")
		metrics := filepath.Join(h.dir, "metrics"+strconv.Itoa(i)+".prom")
		_ = os.Remove(syslog)
		cmd := exec.CommandContext(t.Context(), "/bin/sh", wrapperSource)
		env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), beMainEnv + "=1", "CMS_ETL_ENV_FILE=" + envFile,
			"CMS_ETL_BIN=" + os.Args[0], "CMS_ETL_INPUT=" + tc.input, "CMS_ETL_OUTPUT=parquet:" + out,
			"CMS_ETL_LOG=" + logFile, "CMS_ETL_METRICS_FILE=" + metrics}
		if tc.ak != "" {
			// The environment file sets CMS_AK; a later line wins.
			wrong := filepath.Join(h.dir, "wrong.env")
			if err := os.WriteFile(wrong, []byte(envText+"CMS_AK="+tc.ak+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env = append(env, "CMS_ETL_ENV_FILE="+wrong)
		}
		for _, kv := range os.Environ() {
			// Nothing of the test's own environment may feed etl the secret.
			if !strings.HasPrefix(kv, "CMS_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "DATABASE_URL=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		code := 0
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if code != tc.code {
			t.Errorf("%s: wrapper exit %d, want %d; stdout %q stderr %q", tc.name, code, tc.code, stdout.String(), stderr.String())
		}
		logText, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatalf("%s: log file: %v", tc.name, err)
		}
		requireJSONLines(t, tc.name+" log file", string(logText))
		if strings.Contains(string(logText), testCreds.SK) {
			t.Errorf("%s: the SK is in the log file", tc.name)
		}
		syslogText, _ := os.ReadFile(syslog)
		alerted := strings.Contains(string(syslogText), "-p user.err")
		if alerted != tc.alert || (stdout.Len() > 0) != tc.alert {
			t.Errorf("%s: alert to syslog %v, to stdout %q; want an alert %v", tc.name, alerted, stdout.String(), tc.alert)
		}
		if tc.alert && !strings.Contains(stdout.String(), "exited "+strconv.Itoa(tc.code)) {
			t.Errorf("%s: the alert does not give the exit code: %q", tc.name, stdout.String())
		}
		if tc.code == ExitPartial && !strings.Contains(string(syslogText), "-p user.notice") {
			t.Errorf("%s: exit 3 not logged at notice: %q", tc.name, syslogText)
		}
		m, err := os.ReadFile(metrics)
		if err != nil || !strings.Contains(string(m), "cms_etl_exit_code "+strconv.Itoa(tc.code)) {
			t.Errorf("%s: metrics file (--metrics-file) lacks the exit code %d: %v\n%s", tc.name, tc.code, err, m)
		}
	}
}

// The systemd pair runs the same wrapper, treats exit 3 as success and
// passes systemd-analyze verify where systemd is installed.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(repoRoot, "contrib", "systemd")
	service, err := os.ReadFile(filepath.Join(dir, "cms-etl.service"))
	if err != nil {
		t.Fatal(err)
	}
	timer, err := os.ReadFile(filepath.Join(dir, "cms-etl.timer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=oneshot", "ExecStart=" + wrapperInstalled + "\n", "SuccessExitStatus=3\n", "Environment=CMS_ETL_LOG=\n"} {
		if !bytes.Contains(service, []byte(want)) {
			t.Errorf("cms-etl.service lacks %q", want)
		}
	}
	for _, want := range []string{"OnCalendar=", "Persistent=true", "WantedBy=timers.target"} {
		if !bytes.Contains(timer, []byte(want)) {
			t.Errorf("cms-etl.timer lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units checked statically only")
		return
	}
	// verify wants ExecStart to exist: point it at the wrapper in the tree.
	abs, err := filepath.Abs(wrapperSource)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "cms-etl.service"), bytes.ReplaceAll(service, []byte(wrapperInstalled), []byte(abs)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "cms-etl.timer"), timer, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, "verify", filepath.Join(tmp, "cms-etl.service"), filepath.Join(tmp, "cms-etl.timer")).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The cron wrapper's default is the nightly recipe: etl discover of
// yesterday with --enqueue cdr, then etl run --input queue --query cdr, each
// with its own metrics file beside the other; the worst exit code is the
// wrapper's, and each failing step alerts on its own. Settings missing for
// the recipe are an alert and exit 2.
func TestCronWrapperRunsTheNightlyRecipe(t *testing.T) {
	t.Parallel()
	url, db := migratedDB(t)
	h := scheduleHarness(t, 1, nil)
	day := yesterday()
	want := listed(h, day, day.Add(24*time.Hour))
	details := filepath.Join(h.dir, "call_detail")
	base := nightlyEnv(h, url) + "CMS_ETL_OUTPUT=postgres,parquet:" + details + "\n"
	run := func(name, envText string) (code int, stdout, logText, syslogText, metricsDir string) {
		t.Helper()
		r := runNightly(t, h, name, envText)
		return r.code, r.stdout, r.log, r.syslog, r.dir
	}

	code, stdout, logText, syslogText, dir := run("ok", base+"CMS_AK="+testCreds.AK+"\n")
	if code != ExitOK || stdout != "" || syslogText != "" {
		t.Fatalf("nightly recipe: exit %d, alert %q %q; log:\n%s", code, stdout, syslogText, tail(logText, 4000))
	}
	lines := requireJSONLines(t, "log file", logText)
	var summaries int
	for _, l := range lines {
		if l["event"] == "run_summary" {
			summaries++
		}
	}
	if summaries != 2 {
		t.Errorf("%d run_summary events in the log, want one per step", summaries)
	}
	for file, line := range map[string]string{"cms_etl.prom": "cms_etl_exit_code 0", "cms_etl_discover.prom": "cms_etl_discover_exit_code 0"} {
		if m, err := os.ReadFile(filepath.Join(dir, file)); err != nil || !strings.Contains(string(m), line) {
			t.Errorf("%s lacks %q: %v", file, line, err)
		}
	}
	if r, d := count(t, db, "SELECT count(*) FROM cms.call_record"), count(t, db, "SELECT count(*) FROM cms.call_detail"); r != int64(len(want)) || d != r {
		t.Errorf("call_record %d, call_detail %d rows; the simulator lists %d calls", r, d, len(want))
	}
	if _, rows := committed(t, details); rows != len(want) {
		t.Errorf("the call_detail dataset has %d rows, want %d", rows, len(want))
	}

	// The discovery is refused; the CDR step still runs (the queue is
	// drained: nothing to ask) and the wrapper exits with the failure.
	code, stdout, _, syslogText, _ = run("wrong-ak", base+"CMS_AK=wrongAK\n")
	if code != ExitAborted || !strings.Contains(stdout, "etl discover exited 1") || strings.Count(syslogText, "-p user.err") != 1 {
		t.Errorf("wrong AK: exit %d, alerts %q / %q", code, stdout, syslogText)
	}

	code, stdout, _, _, _ = run("no-vdns", strings.Replace(base, "CMS_ETL_VDNS=25,26\n", "", 1)+"CMS_AK="+testCreds.AK+"\n")
	if code != ExitUsage || !strings.Contains(stdout, "CMS_ETL_VDNS") {
		t.Errorf("without CMS_ETL_VDNS: exit %d, alert %q", code, stdout)
	}
}

// nightlyEnv is the environment file of the nightly recipe against h's
// simulator and the database at url, the secret key and AK excluded. The
// wrapper works out yesterday with date(1), on the machine's clock; should
// the machine's date have moved on since the tests' clock was pinned,
// CMS_ETL_DAY gives the tests' yesterday instead.
func nightlyEnv(h *harness, url string) string {
	env := "CMS_API_URL=" + h.sim.URL() + "\nCMS_ETL_SK_FILE=" + h.skFile + "\nDATABASE_URL='" + url + "'" +
		"\nCMS_ETL_CC_ID=1\nCMS_ETL_VDNS=25,26" +
		"\nCMS_ETL_ARGS=\"--ca-file " + h.sim.CAFile() + " --rate 0\"\nCMS_ETL_RUN_ARGS=\"--concurrency 16\"\n"
	if !time.Now().UTC().Truncate(24 * time.Hour).Equal(testNow().UTC().Truncate(24 * time.Hour)) {
		env += "CMS_ETL_DAY=" + yesterday().Format(time.DateOnly) + "\n"
	}
	return env
}

// nightly is what one run of the cron wrapper did.
type nightly struct {
	code                     int
	stdout, log, syslog, dir string
}

// summaries counts the run_summary events of the log by command.
func (n nightly) summaries(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range requireJSONLines(t, "log file", n.log) {
		switch {
		case l["event"] != "run_summary":
		case l["discovery"] != nil:
			out["discover"]++
		default:
			out["run"]++
		}
	}
	return out
}

// runNightly runs the cron wrapper under /bin/sh with the settings envText,
// etl being this test binary on the tests' clock, logger a script that
// records its arguments, the log and metrics files in a directory of its
// own (name, under h.dir).
func runNightly(t *testing.T, h *harness, name, envText string) nightly {
	t.Helper()
	dir := filepath.Join(h.dir, name)
	bin := filepath.Join(dir, "bin")
	syslog := filepath.Join(dir, "syslog")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "logger"), []byte("#!/bin/sh\necho \"$*\" >> "+syslog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(dir, "cms-etl.env")
	if err := os.WriteFile(envFile, []byte(envText), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "log.json")
	cmd := exec.CommandContext(t.Context(), "/bin/sh", wrapperSource)
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH"), beMainEnv + "=1", testClockEnv(), "CMS_ETL_ENV_FILE=" + envFile,
		"CMS_ETL_BIN=" + os.Args[0], "CMS_ETL_LOG=" + logFile, "CMS_ETL_METRICS_FILE=" + filepath.Join(dir, "cms_etl.prom")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CMS_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	n := nightly{dir: dir, stdout: out.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		n.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if errOut.Len() > 0 {
		t.Errorf("%s: the wrapper wrote to stderr: %s", name, errOut.String())
	}
	b, _ := os.ReadFile(logFile)
	sl, _ := os.ReadFile(syslog)
	n.log, n.syslog = string(b), string(sl)
	return n
}

// The next night lists the next day, never this one again: while etl
// discover exits 3 for slices it could not list (failed, or not closed
// yet), the wrapper runs it again with the same arguments, with backoff,
// until CMS_ETL_DISCOVER_RETRY_FOR; still short then, it alerts at err and
// exits 4 (which fails the systemd unit). Only then, or once the
// discovery is whole, does the CDR step run. Rows the discovery rejected
// are not retried (a rerun lists them the same way): a warning, exit 3.
func TestCronWrapperRetriesTheDiscovery(t *testing.T) {
	t.Parallel()
	retry := "CMS_ETL_DISCOVER_RETRY_DELAY=1s\nCMS_ETL_DISCOVER_RETRY_MAX_DELAY=2s\n"
	tests := []struct {
		name       string
		sim        func(*cmssim.Config, *cmssim.CallsConfig)
		env        string
		code       int
		cdrMayFail bool   // the CDR step may exit 3: then so does the wrapper
		discovers  int    // etl discover runs; -1: at least two
		syslog     string // a line the syslog must hold
		err        bool   // an alert at err (and on stdout)
	}{
		{name: "slices fail once, then list", env: retry + "CMS_ETL_DISCOVER_RETRY_FOR=1m\nCMS_ETL_DISCOVER_ARGS=\"--max-attempts 1\"\n",
			sim: func(cfg *cmssim.Config, _ *cmssim.CallsConfig) {
				cfg.TransientShare, cfg.TransientAttempts, cfg.TransientKinds = 0.2, 1, []string{cmssim.FaultGenericFailure}
			},
			// The CDR step meets the same faults: its retry budget may leave a
			// call failed for the queue's next run (exit 3).
			code: ExitOK, cdrMayFail: true, discovers: 2, syslog: "-p user.notice -- etl discover had "},
		{name: "slices never close", env: retry + "CMS_ETL_DISCOVER_RETRY_FOR=3s\nCMS_ETL_DISCOVER_ARGS=\"--settle-lag 40h\"\n",
			code: 4, discovers: -1, syslog: "-p user.err -- cms-etl: etl discover still had 96 slices of the window not listed", err: true},
		{name: "rejected rows only", env: retry + "CMS_ETL_DISCOVER_RETRY_FOR=1m\n",
			sim:  func(_ *cmssim.Config, c *cmssim.CallsConfig) { c.UnkeyedRowShare = 0.01 },
			code: ExitPartial, discovers: 1, syslog: "-p user.warning -- etl discover listed the whole window but rejected rows"},
		{name: "a bad setting", env: "CMS_ETL_DISCOVER_RETRY_FOR='4 hours'\n",
			code: ExitUsage, discovers: 0, syslog: "-p user.err -- cms-etl: CMS_ETL_DISCOVER_RETRY_FOR=4 hours is not a duration", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, db := migratedDB(t)
			h := scheduleHarness(t, 1, tc.sim)
			r := runNightly(t, h, "night", nightlyEnv(h, url)+"CMS_AK="+testCreds.AK+"\n"+tc.env)
			runs := r.summaries(t)
			if m, _ := os.ReadFile(filepath.Join(r.dir, "cms_etl.prom")); tc.cdrMayFail && strings.Contains(string(m), "cms_etl_exit_code 3") {
				tc.code = ExitPartial
			}
			if r.code != tc.code || tc.discovers >= 0 && runs["discover"] != tc.discovers || tc.discovers < 0 && runs["discover"] < 2 ||
				!strings.Contains(r.syslog, tc.syslog) || strings.Contains(r.syslog, "-p user.err") != tc.err || (r.stdout != "") != tc.err {
				t.Fatalf("exit %d, %v; syslog:\n%s\nstdout %q; want exit %d, %d discover runs, %q, an alert at err: %v\nlog:\n%s",
					r.code, runs, r.syslog, r.stdout, tc.code, tc.discovers, tc.syslog, tc.err, tail(r.log, 3000))
			}
			if tc.code == ExitUsage {
				return
			}
			if runs["run"] != 1 {
				t.Errorf("%d CDR runs after the discovery, want one", runs["run"])
			}
			if tc.code == ExitOK {
				want := listed(h, yesterday(), yesterday().Add(24*time.Hour))
				if r, d := count(t, db, "SELECT count(*) FROM cms.call_record"), count(t, db, "SELECT count(*) FROM cms.call_detail"); r != int64(len(want)) || d != r {
					t.Errorf("call_record %d, call_detail %d rows; the simulator lists %d calls", r, d, len(want))
				}
			}
		})
	}
}
