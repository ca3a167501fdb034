package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/cmsetl/cms-etl/"

// rules are ARCHITECTURE.md's import rules: a package (by path prefix) may
// import, of this module's packages, only those matching allowed; forbidden
// lists imports that are never allowed there (third-party included).
var rules = []struct {
	pkg       string
	allowed   []string
	forbidden []string
}{
	{pkg: "extract", allowed: []string{"extract"}},
	{pkg: "transform", allowed: []string{"extract"}},
	{pkg: "load", allowed: []string{"extract", "transform", "load", "internal/outcome"}},
	{pkg: "migrations", allowed: nil},
	{pkg: "internal/outcome", allowed: nil},
	{pkg: "internal/recordspec", allowed: nil},
	{pkg: "internal/pipeline/adapters", allowed: []string{"extract", "transform", "load", "internal/outcome", "internal/pipeline"}},
	{pkg: "internal/pipeline", allowed: []string{"extract", "transform", "internal/outcome"},
		forbidden: []string{"github.com/jackc/pgx"}},
	{pkg: "internal/cmssim", allowed: []string{"extract"}},
	{pkg: "internal/pgtest/cluster", allowed: nil},
	{pkg: "internal/pgtest", allowed: []string{"migrations", "internal/pgtest/cluster"}},
}

// TestImportRules reads every non-test Go file's imports and checks them
// against rules; nothing outside cmd may import cmd.
func TestImportRules(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	imports := map[string]map[string]bool{} // package dir -> imports
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if imports[rel] == nil {
			imports[rel] = map[string]bool{}
		}
		for _, im := range f.Imports {
			imports[rel][strings.Trim(im.Path.Value, `"`)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 20 {
		t.Fatalf("read %d packages; the walk is broken", len(imports))
	}
	under := func(pkg, prefix string) bool { return pkg == prefix || strings.HasPrefix(pkg, prefix+"/") }
	for pkg, ims := range imports {
		for im := range ims {
			own, isOwn := strings.CutPrefix(im, module)
			if isOwn && under(own, "cmd") && !under(pkg, "cmd") {
				t.Errorf("%s imports %s: nothing outside cmd may", pkg, own)
			}
			for _, r := range rules {
				if !under(pkg, r.pkg) {
					continue
				}
				for _, f := range r.forbidden {
					if strings.HasPrefix(im, f) {
						t.Errorf("%s imports %s, which ARCHITECTURE.md forbids there", pkg, im)
					}
				}
				if !isOwn {
					break
				}
				ok := false
				for _, a := range r.allowed {
					ok = ok || under(own, a)
				}
				if !ok {
					t.Errorf("%s imports %s; ARCHITECTURE.md allows only %v", pkg, own, r.allowed)
				}
				break // the first (most specific listed) rule applies
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "ARCHITECTURE.md")); err != nil {
		t.Errorf("ARCHITECTURE.md: %v", err)
	}
}
