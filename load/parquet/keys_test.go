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

	got, st, err := pqsink.CommittedKeys(t.Context(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if st != (pqsink.CommittedStats{Files: 4, Rows: 40010}) {
		t.Errorf("stats %+v, want 4 files and 40010 rows, none skipped", st)
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
	filtered, st, err := pqsink.CommittedKeys(t.Context(), dir, &pqsink.Filter{Keep: func(d extract.Digest) bool { return d[0]%2 == 0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer filtered.Close()
	if st.Rows != 40010 || filtered.Len() != len(even) {
		t.Errorf("filtered: %d rows, %d digests; want 40010 rows, %d digests", st.Rows, filtered.Len(), len(even))
	}
	for _, d := range even {
		if !filtered.Has(d) {
			t.Fatalf("accepted key %x missing", d)
		}
	}

	// A call ID range skips the files whose statistics lie outside it,
	// reading only their footers. In byte order the first commit's files
	// span "...-0" to "...-9999" and the second's "...-40000" to "...-40009".
	tests := []struct {
		name           string
		lo, hi         string
		skipped, rows  int
		wantFirstFiles bool
	}{
		{"first commit only", "1732400000000-0", "1732400000000-1", 2, 40000, true},
		{"nothing", "1800000000000-1", "1800000000000-9", 4, 0, false},
		{"everything", "0", "9", 0, 40010, true},
	}
	for _, tc := range tests {
		set, st, err := pqsink.CommittedKeys(t.Context(), dir, &pqsink.Filter{MinCallID: tc.lo, MaxCallID: tc.hi})
		if err != nil {
			t.Fatal(err)
		}
		if st.Files != 4 || st.SkippedFiles != tc.skipped || st.Rows != tc.rows || set.Len() != tc.rows {
			t.Errorf("%s: stats %+v, %d digests; want %d skipped, %d rows", tc.name, st, set.Len(), tc.skipped, tc.rows)
		}
		first := extract.Key{CCID: 1, VDN: 1, CallID: "1732400000000-0"}.Digest()
		if set.Has(first) != tc.wantFirstFiles {
			t.Errorf("%s: first row's key held = %v", tc.name, set.Has(first))
		}
		set.Close()
	}
}

func TestCommittedKeysMissingDir(t *testing.T) {
	t.Parallel()
	got, st, err := pqsink.CommittedKeys(t.Context(), filepath.Join(t.TempDir(), "absent"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 0 || got.Len() != 0 {
		t.Fatalf("CommittedKeys(absent) = %d keys, %d rows", got.Len(), st.Rows)
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

// PartitionKeys reads one partition's committed files (the null partition
// too), nothing else; a partition with no directory holds no keys, and a
// name that is not a partition is refused. Keys add up across calls.
func TestPartitionKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	days := []*time.Time{ptr(time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)), ptr(time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)),
		ptr(time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)), nil}
	keyOf := map[int]extract.Key{}
	for i, d := range days {
		k := extract.Key{CCID: 1, VDN: 1, CallID: "1732400000000-" + strconv.Itoa(i)}
		keyOf[i] = k
		row := rowAt(k.CallID, d)
		row.CCID, row.VDN = 1, 1
		if err := s.Write(t.Context(), []transform.Row{row}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A file being written is no committed file.
	tmp := filepath.Join(dir, "call_date=2026-11-22", "part-x-00009.parquet.tmp")
	if err := os.WriteFile(tmp, []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := extract.NewDigestSet(0)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	for _, tc := range []struct {
		partition string
		files     int
		want      []int // keys held after this call, cumulative
	}{
		{"call_date=2026-11-23", 1, []int{1, 2}},
		{"call_date=2026-11-21", 0, []int{1, 2}},
		{"call_date=__HIVE_DEFAULT_PARTITION__", 1, []int{1, 2, 3}},
		{"call_date=2026-11-22", 1, []int{0, 1, 2, 3}},
	} {
		st, err := pqsink.PartitionKeys(t.Context(), dir, tc.partition, set)
		if err != nil {
			t.Fatal(err)
		}
		if set.Len() != len(tc.want) || st.Files != tc.files {
			t.Errorf("%s: %d keys held, stats %+v; want %d keys, %d files", tc.partition, set.Len(), st, len(tc.want), tc.files)
		}
		for _, i := range tc.want {
			if !set.Has(keyOf[i].Digest()) {
				t.Errorf("%s: key %v missing", tc.partition, keyOf[i])
			}
		}
	}
	for _, bad := range []string{"../call_date=2026-11-23", "2026-11-23", "call_date=2026-11-23/x", ""} {
		if _, err := pqsink.PartitionKeys(t.Context(), dir, bad, set); err == nil {
			t.Errorf("partition %q: no error", bad)
		}
	}
}
