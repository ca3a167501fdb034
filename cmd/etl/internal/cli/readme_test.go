package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// commandsOfUsage lists the commands `etl --help` names.
func commandsOfUsage(t *testing.T) []string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(t.Context(), []string{"--help"}, Env{Stdout: &out, Stderr: &errb}); code != ExitOK {
		t.Fatalf("etl --help: exit %d", code)
	}
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  etl ([a-z]+)`).FindAllStringSubmatch(out.String(), -1) {
		cmds = append(cmds, m[1])
	}
	if len(cmds) < 7 {
		t.Fatalf("etl --help names %d commands: %v", len(cmds), cmds)
	}
	return cmds
}

// Issue 10, defect 9: help and README agree. Every command `etl --help`
// names is in the README's commands table, and every flag of every command
// is in one of its configuration tables (a table row naming `--flag`).
func TestEveryFlagOfEveryCommandIsInTheREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows strings.Builder
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "|") {
			rows.WriteString(line + "\n")
		}
	}
	tables := rows.String()
	for _, cmd := range commandsOfUsage(t) {
		if !strings.Contains(tables, "`etl "+cmd) {
			t.Errorf("README's commands table has no row for `etl %s`", cmd)
		}
		if cmd == "version" {
			continue
		}
		var out, errb bytes.Buffer
		if code := Main(t.Context(), []string{cmd, "--help"}, Env{Stdout: &out, Stderr: &errb}); code != ExitOK {
			t.Fatalf("etl %s --help: exit %d: %s", cmd, code, errb.String())
		}
		for flag := range helpGroups(t, out.String()) {
			if !strings.Contains(tables, "`--"+flag+"`") {
				t.Errorf("etl %s --%s is in no README table row", cmd, flag)
			}
		}
	}
}
