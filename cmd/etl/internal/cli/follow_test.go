package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// The follower's flags are refused, naming the flag, where they do not
// apply or hold a bad value (exit 2).
func TestFollowFlagsNameTheFlag(t *testing.T) {
	t.Setenv("CMS_SK", "s3cr3t-value")
	t.Setenv("DATABASE_URL", "")
	base := []string{"--api-url", "https://127.0.0.1:1", "--ak", "ak", "--output", "postgres", "--database-url", "postgres://h/db"}
	queue := slices.Concat([]string{"--input", "queue"}, base)
	csv := slices.Concat([]string{"--input", "csv:a.csv"}, base)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"follow on csv", slices.Concat(csv, []string{"--follow"}), "--follow only applies with --input queue"},
		{"tracking on csv", slices.Concat(csv, []string{"--track-every", "5s"}), "--track-every only applies with --input queue"},
		{"poll interval without follow", slices.Concat(queue, []string{"--poll-interval", "2s"}), "--poll-interval only applies with --follow"},
		{"poll interval too short", slices.Concat(queue, []string{"--follow", "--poll-interval", "1ms"}), "--poll-interval 1ms"},
		{"track every too short", slices.Concat(queue, []string{"--track-every", "10ms"}), "--track-every 10ms"},
		{"track max without tracking", slices.Concat(queue, []string{"--track-max", "1h"}), "--track-max only applies with --track-every"},
		{"track max zero", slices.Concat(queue, []string{"--track-every", "5s", "--track-max", "0s"}), "--track-max 0s"},
		{"tracking a cdr", slices.Concat(queue, []string{"--track-every", "5s", "--query", "cdr", "--direction", "in"}), "--track-every only applies with --query basic"},
		{"listen not an address", slices.Concat(queue, []string{"--listen", "9464"}), `--listen "9464"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append([]string{"run"}, tc.args...), Env{Stdout: &stdout, Stderr: &stderr, StderrIsTerminal: true})
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr.String())
			}
			if msg, _ := refusalOf(t, stderr.String(), true, "run", ExitUsage); !strings.Contains(msg, tc.want) {
				t.Errorf("refusal %q does not mention %q", msg, tc.want)
			}
		})
	}
}

// claimBatch: a run that drains the queue claims well ahead of its workers,
// a follower about what they can start.
func TestClaimBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		follow      bool
		concurrency int
		want        int
	}{{false, 8, 64}, {false, 32, 128}, {true, 8, 4}, {true, 32, 16}, {true, 1, 4}} {
		c := &Config{Concurrency: tc.concurrency}
		c.Follow = tc.follow
		if got := claimBatch(c); got != tc.want {
			t.Errorf("follow %v, concurrency %d: %d, want %d", tc.follow, tc.concurrency, got, tc.want)
		}
	}
}
