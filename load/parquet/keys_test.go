package parquet_test

import (
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

	got, n, err := pqsink.CommittedKeys(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if n != 40010 {
		t.Errorf("rows = %d, want 40010", n)
	}
	if got.Len() != len(want) {
		t.Errorf("got %d digests, want %d", got.Len(), len(want))
	}
	for d := range want {
		if !got.Has(d) {
			t.Fatalf("committed key %x missing", d)
		}
	}

	// With a filter only the accepted keys are held; every row is still read.
	var even []extract.Digest
	for d := range want {
		if d[0]%2 == 0 {
			even = append(even, d)
		}
	}
	filtered, n, err := pqsink.CommittedKeys(t.Context(), dir, func(d extract.Digest) bool { return d[0]%2 == 0 })
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Close()
	if n != 40010 || filtered.Len() != len(even) {
		t.Errorf("filtered: %d rows, %d digests; want 40010 rows, %d digests", n, filtered.Len(), len(even))
	}
	for _, d := range even {
		if !filtered.Has(d) {
			t.Fatalf("accepted key %x missing", d)
		}
	}
}

func TestCommittedKeysMissingDir(t *testing.T) {
	t.Parallel()
	got, n, err := pqsink.CommittedKeys(t.Context(), filepath.Join(t.TempDir(), "absent"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || got.Len() != 0 {
		t.Fatalf("CommittedKeys(absent) = %d keys, %d rows", got.Len(), n)
	}
	got.Close()
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
	_, _, err := pqsink.CommittedKeys(t.Context(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("CommittedKeys error = %v, want one naming %s", err, bad)
	}
}
