package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunUsageErrorsNameTheFlag(t *testing.T) {
	t.Setenv("CMS_SK", "s3cr3t-value")
	t.Setenv("CMS_API_URL", "")
	t.Setenv("CMS_AK", "")
	t.Setenv("DATABASE_URL", "")
	base := []string{"--api-url", "https://127.0.0.1:1", "--ak", "ak"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no input", append([]string{"--output", "parquet:x"}, base...), "--input is required"},
		{"bad input", append([]string{"--input", "kafka", "--output", "parquet:x"}, base...), `--input "kafka"`},
		{"no output", append([]string{"--input", "csv:a.csv"}, base...), "--output is required"},
		{"bad output", append([]string{"--input", "csv:a.csv", "--output", "s3:x"}, base...), `--output "s3:x"`},
		{"postgres without db", append([]string{"--input", "csv:a.csv", "--output", "postgres"}, base...), "--database-url"},
		{"queue without db", append([]string{"--input", "queue", "--output", "parquet:x"}, base...), "--database-url"},
		{"rate negative", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--rate", "-1"}, base...), "--rate"},
		{"concurrency zero", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--concurrency", "0"}, base...), "--concurrency"},
		{"vdn out of range", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--vdn", "9999"}, base...), "--vdn 9999"},
		{"max-items on csv", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--max-items", "5"}, base...), "--max-items only applies"},
		{"no api url", []string{"--input", "csv:a.csv", "--output", "parquet:x", "--ak", "ak"}, "--api-url"},
		{"bad api url", []string{"--input", "csv:a.csv", "--output", "parquet:x", "--ak", "ak", "--api-url", "10.0.0.5:28443"}, "--api-url"},
		{"no ak", []string{"--input", "csv:a.csv", "--output", "parquet:x", "--api-url", "https://h:1"}, "--ak"},
		{"bad precision", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--timestamp-precision", "ns"}, base...), "--timestamp-precision"},
		{"bad signed headers", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--signed-headers", "host;date"}, base...), "--signed-headers"},
		{"unknown flag", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--sk", "x"}, base...), "-sk"},
		{"refresh without postgres", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--refresh"}, base...), "--refresh"},
		{"bad log format", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--log-format", "xml"}, base...), "--log-format"},
		{"rate group without db", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--rate-group", "nightly"}, base...), "--database-url (or DATABASE_URL) is required with --rate-group"},
		{"rate group unlimited", append([]string{"--input", "csv:a.csv", "--output", "parquet:x", "--rate-group", "nightly", "--rate", "0", "--database-url", "postgres://h/db"}, base...), "--rate-group \"nightly\": needs a --rate above 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, terminal := range []bool{false, true} {
				var stdout, stderr bytes.Buffer
				code := Main(t.Context(), append([]string{"run"}, tc.args...), Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: terminal})
				if code != ExitUsage {
					t.Fatalf("terminal=%v: exit %d, want %d; stderr:\n%s", terminal, code, ExitUsage, stderr.String())
				}
				if strings.Contains(stderr.String(), "s3cr3t-value") {
					t.Error("the SK appeared on stderr")
				}
				msg, hint := refusalOf(t, stderr.String(), terminal, "run", ExitUsage)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("terminal=%v: refusal %q does not mention %q", terminal, msg, tc.want)
				}
				if !strings.Contains(hint, "etl run --help") {
					t.Errorf("terminal=%v: hint %q does not point at etl run --help", terminal, hint)
				}
			}
		})
	}
}

// refusalOf checks that stderr holds exactly one refusal in the style for
// the terminal or not, and returns what it says is wrong and what to do.
func refusalOf(t *testing.T, stderr string, terminal bool, cmd string, code int) (msg, hint string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("want exactly one line on stderr, got %d:\n%s", len(lines), stderr)
	}
	if terminal {
		line, ok := strings.CutPrefix(lines[0], "etl "+cmd+": ")
		if !ok || strings.HasPrefix(line, "{") {
			t.Fatalf("refusal on a terminal is not \"etl %s: ...\": %s", cmd, lines[0])
		}
		return line, line
	}
	var ev struct {
		Level, Command, Error, Hint, Message string
		ExitCode                             int `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatalf("refusal off a terminal is not JSON: %v\n%s", err, lines[0])
	}
	if ev.Level != "error" || ev.Command != cmd || ev.Message != cmd+" not started" || ev.ExitCode != code || ev.Error == "" {
		t.Fatalf("refusal event %+v, want level error, command %s, message %q, exit_code %d", ev, cmd, cmd+" not started", code)
	}
	return ev.Error, ev.Hint
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Setenv("CMS_API_URL", "https://from-env:1")
	t.Setenv("CMS_AK", "envAK")
	t.Setenv("CMS_SK", "envSK")
	var c Config
	fs := newFlagSet("run", "")
	c.registerRun(fs)
	if err := parse(fs, []string{"--api-url", "https://from-flag:2"}, Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}); err != nil {
		t.Fatal(err)
	}
	if err := c.applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if c.APIURL != "https://from-flag:2" || c.AK != "envAK" || c.sk != "envSK" {
		t.Fatalf("got api-url %q ak %q; want the flag to win and the env to fill the rest", c.APIURL, c.AK)
	}
}

func TestSKFileWinsAndIsNeverPrinted(t *testing.T) {
	t.Setenv("CMS_SK", "env-secret")
	dir := t.TempDir()
	p := filepath.Join(dir, "sk")
	if err := os.WriteFile(p, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c Config
	fs := newFlagSet("run", "")
	c.registerRun(fs)
	if err := parse(fs, []string{"--sk-file", p}, Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}); err != nil {
		t.Fatal(err)
	}
	if err := c.applyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if c.sk != "file-secret" {
		t.Fatalf("sk from file not used")
	}
	if s := c.Credentials().String(); strings.Contains(s, "file-secret") {
		t.Fatalf("credentials print the SK: %s", s)
	}
}

func TestHelpExitsZeroAndDocumentsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"run", "--help"}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if stderr.Len() > 0 {
		t.Errorf("help wrote to stderr: %s", stderr.String())
	}
	groups := helpGroups(t, stdout.String())
	for _, f := range []string{"api-url", "ak", "sk-file", "cc-id", "vdn", "rate", "burst", "concurrency", "max-attempts",
		"request-timeout", "metrics-file", "log-format", "progress", "summary", "input", "output", "database-url", "refresh", "lease",
		"max-items", "max-duration", "ca-file", "tls-server-name", "insecure-skip-verify", "rate-group", "query", "direction", "tz"} {
		if _, ok := groups[f]; !ok {
			t.Errorf("--help does not document --%s", f)
		}
	}
	for flag, title := range map[string]string{"input": "Input", "api-url": "CC-CMS API", "rate": "Rate", "rate-group": "Rate", "output": "Output",
		"database-url": "PostgreSQL", "log-format": "Logging and reporting"} {
		if groups[flag] != title {
			t.Errorf("--%s is under %q, want %q", flag, groups[flag], title)
		}
	}
}

// helpGroups parses help output: flag name -> the heading it is listed under.
// It fails on a flag outside a known group or spelled with one dash.
func helpGroups(t *testing.T, help string) map[string]string {
	t.Helper()
	titles := map[string]bool{}
	for _, g := range groupTitles {
		titles[g.title] = true
	}
	out := map[string]string{}
	heading := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			heading = strings.TrimSuffix(line, ":")
			if !titles[heading] {
				t.Errorf("help has a group %q that is not one of the known groups", heading)
			}
		case strings.HasPrefix(line, "  -"):
			name, ok := strings.CutPrefix(line, "  --")
			if !ok {
				t.Errorf("help spells a flag with one dash: %q", line)
				continue
			}
			name, _, _ = strings.Cut(name, " ")
			out[name] = heading
		}
	}
	return out
}

// Every flag of every command is listed under a known group, with --.
func TestEveryCommandsHelpIsGrouped(t *testing.T) {
	for _, cmd := range []string{"run", "discover", "demo", "ping", "migrate", "enqueue", "requeue"} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), []string{cmd, "--help"}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitOK {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		groups := helpGroups(t, stdout.String())
		if len(groups) == 0 {
			t.Errorf("%s --help lists no flags:\n%s", cmd, stdout.String())
		}
		for f, g := range groups {
			if g == "" {
				t.Errorf("%s --help lists --%s outside a group", cmd, f)
			}
		}
	}
}

// An unknown flag is one line naming it, the nearest known flag and where
// the help is: no dump of every flag.
func TestUnknownFlagIsOneLineWithASuggestion(t *testing.T) {
	tests := []struct {
		cmd, flag, near string
	}{
		{"run", "--out", "--output"},
		{"run", "--sk", "--sk-file"},
		{"run", "-concurrancy", "--concurrency"},
		{"enqueue", "--databse-url", "--database-url"},
		{"run", "--frobnicate", ""},
	}
	for _, tc := range tests {
		for _, terminal := range []bool{true, false} {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), []string{tc.cmd, tc.flag, "x"}, Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: terminal})
			if code != ExitUsage {
				t.Fatalf("%s %s: exit %d, want 2", tc.cmd, tc.flag, code)
			}
			msg, hint := refusalOf(t, stderr.String(), terminal, tc.cmd, ExitUsage)
			name := "--" + strings.TrimLeft(tc.flag, "-")
			if !strings.Contains(msg, "unknown flag "+name) {
				t.Errorf("%q does not name the flag %s", msg, name)
			}
			if tc.near != "" && !strings.Contains(hint, "did you mean "+tc.near+"?") {
				t.Errorf("%q does not suggest %s", hint, tc.near)
			}
			if tc.near == "" && strings.Contains(hint, "did you mean") {
				t.Errorf("%q suggests a flag for %s", hint, tc.flag)
			}
			if !strings.Contains(hint, "`etl "+tc.cmd+" --help`") {
				t.Errorf("%q does not point at etl %s --help", hint, tc.cmd)
			}
		}
	}
}

func TestNearest(t *testing.T) {
	t.Parallel()
	names := []string{"output", "input", "rate", "run-id", "sk-file", "summary", "concurrency"}
	for name, want := range map[string]string{
		"out": "output", "outputs": "output", "inptu": "input", "rat": "rate", "sk": "sk-file",
		"concurency": "concurrency", "zzz": "", "": "", "r": "", "sumary": "summary",
	} {
		if got := nearest(name, names); got != want {
			t.Errorf("nearest(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), []string{"enqeue"}, Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: terminal}); code != ExitUsage {
			t.Fatalf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr.String(), "did you mean `etl enqueue`?") || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("terminal=%v: want one line suggesting enqueue:\n%s", terminal, stderr.String())
		}
	}
}

// The refusal style is decided from --log-format before the flags are parsed.
func TestFlagValueBeforeParsing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "auto"},
		{[]string{"--log-format", "json"}, "json"},
		{[]string{"-log-format=console", "--out", "x"}, "console"},
		{[]string{"--out", "x", "--log-format=json"}, "json"},
		{[]string{"--", "--log-format", "json"}, "auto"},
		{[]string{"--log-format"}, "auto"},
	} {
		if got := flagValue(tc.args, "log-format", "auto"); got != tc.want {
			t.Errorf("flagValue(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
