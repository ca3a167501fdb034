package parquet_test

import (
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	pqsink "github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

func TestCommittedKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	want := map[extract.Digest]struct{}{}
	add := func(n, from int) []transform.Row {
		rows := make([]transform.Row, n)
		for i := range rows {
			k := extract.Key{CCID: 1 + (from+i)%65535, VDN: 1 + (from+i)%5000, CallID: "1732400000000-" + strconv.Itoa(from+i)}
			var entered *time.Time
			if i%2 == 0 { // two partitions
				entered = ptr(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
			}
			rows[i] = rowAt(k.CallID, entered)
			rows[i].CCID, rows[i].VDN = int32(k.CCID), int32(k.VDN)
			want[k.Digest()] = struct{}{}
		}
		return rows
	}
	// More rows per file than CommittedKeys decodes per chunk.
	if err := s.Write(t.Context(), add(40000, 0)); err != nil {
		t.Fatal(err)
	}
	info, err := s.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), add(10, 40000)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Uncommitted data must not count: an open temporary file, a leftover
	// copy of a committed file under a temporary name, and a file outside
	// the partitions.
	if err := s.Write(t.Context(), []transform.Row{nullRow("9-9")}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(info.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		filepath.Join(filepath.Dir(info.Files[0]), ".part-old-00000.parquet.tmp"),
		filepath.Join(dir, "part-stray-00000.parquet"),
	} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got, n, err := pqsink.CommittedKeys(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if n != 40010 {
		t.Errorf("rows = %d, want 40010", n)
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %d digests, want %d (or different ones)", len(got), len(want))
	}
}

func TestCommittedKeysMissingDir(t *testing.T) {
	t.Parallel()
	got, n, err := pqsink.CommittedKeys(t.Context(), filepath.Join(t.TempDir(), "absent"))
	if err != nil || n != 0 || len(got) != 0 {
		t.Errorf("CommittedKeys(absent) = %d keys, %d rows, %v", len(got), n, err)
	}
}

func TestCommittedKeysCorruptFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "call_date=2026-11-24", "part-x-00000.parquet")
	if err := os.MkdirAll(filepath.Dir(bad), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("PAR1 this is not parquet PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := pqsink.CommittedKeys(t.Context(), dir)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("CommittedKeys error = %v, want one naming %s", err, bad)
	}
}
