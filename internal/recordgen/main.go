// Command recordgen writes the code derived from the record declarations in
// internal/recordspec: one file per consuming package. It is run by
// `go generate ./internal/recordspec`; a test fails when the files on disk
// differ from what it would write.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	root, err := moduleRoot()
	if err == nil {
		err = writeAll(root)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "recordgen:", err)
		os.Exit(1)
	}
}

// moduleRoot walks up from the working directory to the directory of go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func writeAll(root string) error {
	files, err := generate()
	if err != nil {
		return err
	}
	for rel, src := range files {
		path := filepath.Join(root, filepath.FromSlash(rel))
		if old, err := os.ReadFile(path); err == nil && string(old) == string(src) {
			continue // unchanged: keep the mtime, so builds stay cached
		}
		if err := os.WriteFile(path, src, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", rel, err)
		}
	}
	return nil
}
