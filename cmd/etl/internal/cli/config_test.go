package cli

import (
	"bytes"
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
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append([]string{"run"}, tc.args...), Env{Stdout: &stdout, Stderr: &stderr})
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, stderr.String())
			}
			if strings.Contains(stderr.String(), "s3cr3t-value") {
				t.Error("the SK appeared on stderr")
			}
		})
	}
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
	for _, f := range []string{"api-url", "ak", "sk-file", "cc-id", "vdn", "rate", "burst", "concurrency", "max-attempts",
		"request-timeout", "metrics-file", "log-format", "progress", "input", "output", "database-url", "refresh", "lease",
		"max-items", "max-duration", "ca-file", "tls-server-name", "insecure-skip-verify", "rate-group"} {
		if !strings.Contains(stderr.String(), "-"+f) {
			t.Errorf("--help does not document --%s", f)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"frobnicate"}, Env{Stdout: &stdout, Stderr: &stderr}); code != ExitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
}
