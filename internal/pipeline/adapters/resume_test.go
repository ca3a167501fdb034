package adapters

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSameFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "calls.csv")
	if err := os.WriteFile(path, []byte("callId\n1-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opened, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !sameFile(opened, path) {
		t.Fatal("an unchanged file is reported changed")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("1-2\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if sameFile(opened, path) {
		t.Error("an appended file is reported unchanged")
	}
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if sameFile(opened, path) {
		t.Error("a missing file is reported unchanged")
	}
}
