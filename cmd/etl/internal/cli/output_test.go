package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmsetl/cms-etl/internal/cmssim"
)

// requireJSONLines fails unless every line of s is a JSON object; it
// returns them.
func requireJSONLines(t *testing.T, what, s string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line == "" && s == "" {
			break
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("%s: line %d is not JSON (%v): %q", what, i+1, err, line)
			continue
		}
		events = append(events, ev)
	}
	return events
}

// Off a terminal (cron, systemd, a pipe) stderr carries JSON lines only,
// with the defaults of --log-format, --progress and --summary: for runs that
// finish, for runs that cannot start and for refusals of every command.
func TestStderrOffATerminalIsJSONLines(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{PermanentShare: 0.1})
	good, _ := h.writeCSV("good.csv", 20)
	bad, _ := h.writeCSV("bad.csv", 20, "1,9999,1763856000000-1", "1,1,abc-1")
	api := []string{"--api-url", h.sim.URL(), "--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile(), "--rate", "0"}
	run := func(in, out string, more ...string) []string {
		return append(append([]string{"run", "--input", "csv:" + in, "--output", "parquet:" + filepath.Join(h.dir, out)}, api...), more...)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		message string // an event that must be there
	}{
		{"finished run", run(good, "a"), -1, "run summary"},
		{"partial run", run(bad, "b"), ExitPartial, "run summary"},
		{"missing input", run(filepath.Join(h.dir, "nope.csv"), "c"), ExitUsage, "run not started"},
		{"unknown flag", append(run(good, "d"), "--out", "x"), ExitUsage, "run not started"},
		{"bad value", append(run(good, "e"), "--rate", "fast"), ExitUsage, "run not started"},
		{"no database", []string{"migrate", "--database-url", "postgres://etl@127.0.0.1:1/x?connect_timeout=2"}, ExitAborted, "migrate not started"},
		{"enqueue without input", []string{"enqueue", "--database-url", "postgres://x@y/z"}, ExitUsage, "enqueue not started"},
		{"requeue without --failed", []string{"requeue"}, ExitUsage, "requeue not started"},
		{"ping bad flag", []string{"ping", "--api-url"}, ExitUsage, "ping not started"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "etl not started"},
		{"no command", nil, ExitUsage, "etl not started"},
		{"demo", []string{"demo", "--input", "../../../../testdata/calls.csv", "--out", filepath.Join(h.dir, "demo"), "--rate", "0"}, ExitOK, "run summary"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := Main(t.Context(), tc.args, Env{Stdout: &stdout, Stderr: &stderr})
		if tc.code >= 0 && code != tc.code {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", tc.name, code, tc.code, stderr.String())
		}
		events := requireJSONLines(t, tc.name, stderr.String())
		var found bool
		for _, ev := range events {
			found = found || ev["message"] == tc.message
		}
		if !found {
			t.Errorf("%s: no %q event:\n%s", tc.name, tc.message, stderr.String())
		}
		if strings.HasPrefix(tc.name, "demo") {
			if !strings.Contains(stdout.String(), "rows read:") {
				t.Errorf("demo: the summary is not on stdout:\n%s", stdout.String())
			}
		} else if stdout.Len() > 0 {
			t.Errorf("%s: stdout %q, want nothing (the summary is in the run_summary event)", tc.name, stdout.String())
		}
	}
}

// --summary: auto is text on stderr on a terminal and nothing off one;
// text and json go to stdout; none shows nothing. The run_summary event
// is always logged as JSON off a terminal.
func TestSummaryModes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, cmssim.Config{})
	in, keys := h.writeCSV("calls.csv", 10)
	tests := []struct {
		mode                 string
		terminal             bool
		textOnStderr, stdout string // "text", "json" or ""
	}{
		{"auto", true, "text", ""},
		{"auto", false, "", ""},
		{"text", false, "", "text"},
		{"json", false, "", "json"},
		{"json", true, "", "json"},
		{"none", true, "", ""},
	}
	for i, tc := range tests {
		args := []string{"run", "--input", "csv:" + in, "--output", "parquet:" + filepath.Join(h.dir, "out", tc.mode, string(rune('a'+i))),
			"--api-url", h.sim.URL(), "--ak", testCreds.AK, "--sk-file", h.skFile, "--ca-file", h.sim.CAFile(),
			"--rate", "0", "--progress", "none", "--summary", tc.mode}
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), args, Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: tc.terminal}); code != ExitOK {
			t.Fatalf("--summary %s: exit %d:\n%s", tc.mode, code, stderr.String())
		}
		if got := strings.Contains(stderr.String(), "rows read:"); got != (tc.textOnStderr == "text") {
			t.Errorf("--summary %s, terminal %v: text summary on stderr %v:\n%s", tc.mode, tc.terminal, got, stderr.String())
		}
		if !tc.terminal {
			events := requireJSONLines(t, "--summary "+tc.mode, stderr.String())
			var logged bool
			for _, ev := range events {
				logged = logged || ev["event"] == "run_summary"
			}
			if !logged {
				t.Errorf("--summary %s: no run_summary event off a terminal", tc.mode)
			}
		}
		switch tc.stdout {
		case "":
			if stdout.Len() > 0 {
				t.Errorf("--summary %s: stdout %q, want empty", tc.mode, stdout.String())
			}
		case "text":
			if !strings.Contains(stdout.String(), "rows read:") {
				t.Errorf("--summary text: stdout %q", stdout.String())
			}
		case "json":
			var s map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &s); err != nil || strings.Count(stdout.String(), "\n") != 1 {
				t.Fatalf("--summary json: stdout is not one JSON object (%v): %q", err, stdout.String())
			}
			o := runOutput{summary: s}
			if s["run_id"] == "" || s["status"] != "succeeded" || o.outcome("loaded") != int64(len(keys)) {
				t.Errorf("--summary json: %v", s)
			}
		}
	}
}
