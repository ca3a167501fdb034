package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

// make build and make install stamp the version with -ldflags -X: the
// symbol the Makefile names must be the one Version reports.
func TestMakefileStampsTheVersion(t *testing.T) {
	t.Parallel()
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*-X (\S+)=\$\(VERSION\)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile has no LDFLAGS := -X SYMBOL=$(VERSION) line")
	}
	symbol := string(m[1])
	if want := reflect.TypeFor[Config]().PkgPath() + ".version"; symbol != want {
		t.Fatalf("Makefile stamps %s, want %s", symbol, want)
	}
	for _, re := range []string{`(?m)^build:.*\n\t\$\(GO\) build -ldflags "\$\(LDFLAGS\)" -o bin/etl ./cmd/etl$`,
		`(?m)^install:.*\n\t\$\(GO\) install -ldflags "\$\(LDFLAGS\)" ./cmd/etl$`} {
		if !regexp.MustCompile(re).Match(mk) {
			t.Errorf("Makefile does not stamp the version: no match for %s", re)
		}
	}

	bin := filepath.Join(t.TempDir(), "etl")
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags", "-X "+symbol+"=v9.8.7-test", "-o", bin, "github.com/cmsetl/cms-etl/cmd/etl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "version").Output()
	if err != nil || string(out) != "etl v9.8.7-test\n" {
		t.Fatalf("etl version = %q (%v), want the stamped version", out, err)
	}
}
