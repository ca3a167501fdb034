package parquet_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pqsink "github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestSchemaAndValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		compression string
		golden      string
	}{
		{"", "schema_zstd.golden"},
		{"snappy", "schema_snappy.golden"},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := openSink(t, dir, func(c *pqsink.Config) { c.Compression = tc.compression })
			// The all-null row has no date, so it lands in the null partition.
			full, null := fullRow("1732400000000-1"), nullRow("1732400000000-2")
			if err := s.Write(t.Context(), []transform.Row{full, null}); err != nil {
				t.Fatal(err)
			}
			info, err := s.Commit(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			fullPath := filepath.Join(dir, "call_date=2026-11-23", "part-"+testRunID+"-00000.parquet")
			nullPath := filepath.Join(dir, "call_date=__HIVE_DEFAULT_PARTITION__", "part-"+testRunID+"-00001.parquet")
			if !slices.Equal(info.Files, []string{fullPath, nullPath}) || info.Rows != 2 {
				t.Fatalf("CommitInfo = %+v, want %s and %s with 2 rows", info, fullPath, nullPath)
			}
			goldenPath := filepath.Join("testdata", tc.golden)
			for _, c := range []struct {
				path string
				want []any
			}{
				{fullPath, fullRowValues("1732400000000-1")},
				{nullPath, nullRowValues("1732400000000-2")},
			} {
				f := openParquet(t, c.path)
				if got := columnNames(f); !slices.Equal(got, transform.Columns) {
					t.Errorf("%s: columns = %v\nwant %v", c.path, got, transform.Columns)
				}
				got := describeSchema(f)
				if *update {
					if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				golden, err := os.ReadFile(goldenPath)
				if err != nil {
					t.Fatal(err)
				}
				if got != string(golden) {
					t.Errorf("%s: schema differs from %s:\n got:\n%s\nwant:\n%s", c.path, goldenPath, got, golden)
				}
				if rows, want := readValues(t, f), [][]any{c.want}; !reflect.DeepEqual(rows, want) {
					t.Errorf("%s: values:\n got %#v\nwant %#v", c.path, rows, want)
				}
			}
		})
	}
}

// The golden files pin the contract; this spells out its key points so a
// careless -update cannot relax them.
func TestSchemaContract(t *testing.T) {
	t.Parallel()
	golden, err := os.ReadFile(filepath.Join("testdata", "schema_zstd.golden"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(golden)), "\n")
	if len(lines) != len(transform.Columns)+1 {
		t.Fatalf("golden has %d lines, want %d columns + codecs", len(lines), len(transform.Columns))
	}
	required := map[string]bool{"cc_id": true, "vdn": true, "call_id": true, "fetched_at": true, "run_id": true}
	for i, col := range transform.Columns {
		f := strings.Fields(lines[i])
		if f[0] != col {
			t.Errorf("line %d names %s, want %s", i, f[0], col)
		}
		rep := "OPTIONAL"
		if required[col] {
			rep = "REQUIRED"
		}
		if f[2] != rep {
			t.Errorf("%s repetition %s, want %s", col, f[2], rep)
		}
		switch {
		case strings.HasSuffix(col, "_at"):
			if f[1] != "INT64" || f[3] != "converted=TIMESTAMP_MICROS" || !strings.Contains(f[4], "isAdjustedToUTC=true") {
				t.Errorf("%s is not an INT64 UTC micros timestamp: %s", col, lines[i])
			}
		case f[1] == "BYTE_ARRAY":
			if f[3] != "converted=UTF8" || f[4] != "logical=STRING" {
				t.Errorf("%s is a BYTE_ARRAY without UTF8: %s", col, lines[i])
			}
		case f[1] != "INT32" && f[1] != "INT64":
			t.Errorf("%s has unexpected type: %s", col, lines[i])
		}
	}
	if last := lines[len(lines)-1]; last != "codecs: ZSTD" {
		t.Errorf("zstd golden codecs line = %q", last)
	}
}

func TestWriteCopiesRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	rows := []transform.Row{fullRow("1-1")}
	if err := s.Write(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	// The caller reuses its rows after Write; the file must keep the
	// values as they were at Write.
	*rows[0].KeyID = "overwritten"
	*rows[0].TalkSeconds = 0
	rows[0].CallID = "9-9"
	info, err := s.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := readValues(t, openParquet(t, info.Files[0]))
	if want := [][]any{fullRowValues("1-1")}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestPartitionFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		entered, started *time.Time
		want             string
	}{
		{"entered in UTC", ptr(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)), nil, "call_date=2026-11-24"},
		{"entered converted to UTC", ptr(time.Date(2026, 11, 24, 7, 0, 0, 0, time.FixedZone("", 8*3600))), nil, "call_date=2026-11-23"},
		{"entered wins over started", ptr(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)), ptr(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)), "call_date=2026-01-02"},
		{"started as fallback", nil, ptr(time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC)), "call_date=2025-12-31"},
		{"neither", nil, nil, "call_date=__HIVE_DEFAULT_PARTITION__"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := transform.Row{EnteredAt: tc.entered, CallStartedAt: tc.started}
			if got := pqsink.PartitionFor(&r); got != tc.want {
				t.Errorf("PartitionFor = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPartitioning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	day := func(d int) *time.Time { return ptr(time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC)) }
	started := nullRow("6-6")
	started.CallStartedAt = day(26)
	rows := []transform.Row{
		rowAt("1-1", day(24)), rowAt("2-2", day(25)), rowAt("3-3", nil),
		rowAt("4-4", day(24)), rowAt("5-5", day(26)), started,
	}
	if err := s.Write(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	info, err := s.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Rows != len(rows) || len(info.Files) != 4 {
		t.Fatalf("CommitInfo = %+v, want 4 files with %d rows", info, len(rows))
	}
	// Part numbers are unique across partitions within the run.
	wantIDs := map[string][]string{
		"call_date=2026-11-24":                 {"1-1", "4-4"},
		"call_date=2026-11-25":                 {"2-2"},
		"call_date=2026-11-26":                 {"5-5", "6-6"},
		"call_date=__HIVE_DEFAULT_PARTITION__": {"3-3"},
	}
	seen := map[string]bool{}
	for _, path := range info.Files {
		part := filepath.Base(filepath.Dir(path))
		name := filepath.Base(path)
		if seen[name] {
			t.Errorf("part name %s used twice", name)
		}
		seen[name] = true
		if !strings.HasPrefix(name, "part-"+testRunID+"-") || !strings.HasSuffix(name, ".parquet") {
			t.Errorf("bad part name %s", name)
		}
		var ids []string
		for _, r := range readValues(t, openParquet(t, path)) {
			ids = append(ids, r[2].(string))
		}
		if !slices.Equal(ids, wantIDs[part]) {
			t.Errorf("%s holds %v, want %v", part, ids, wantIDs[part])
		}
		delete(wantIDs, part)
	}
	if len(wantIDs) != 0 {
		t.Errorf("partitions without a file: %v", wantIDs)
	}
}

func TestCommitVisibility(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	d := ptr(time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC))
	if err := s.Write(t.Context(), []transform.Row{rowAt("1-1", d)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), []transform.Row{rowAt("2-2", d), rowAt("3-3", nil)}); err != nil {
		t.Fatal(err)
	}
	wantTmp := []string{
		"call_date=2026-11-24/.part-" + testRunID + "-00000.parquet.tmp",
		"call_date=__HIVE_DEFAULT_PARTITION__/.part-" + testRunID + "-00001.parquet.tmp",
	}
	if got := listFiles(t, dir); !slices.Equal(got, wantTmp) {
		t.Fatalf("before commit: %v, want only %v", got, wantTmp)
	}

	info, err := s.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Rows != 3 {
		t.Errorf("first commit rows = %d, want 3", info.Rows)
	}
	first := []string{
		"call_date=2026-11-24/part-" + testRunID + "-00000.parquet",
		"call_date=__HIVE_DEFAULT_PARTITION__/part-" + testRunID + "-00001.parquet",
	}
	if got := listFiles(t, dir); !slices.Equal(got, first) {
		t.Fatalf("after commit: %v, want %v", got, first)
	}

	// An empty commit changes nothing.
	if info, err := s.Commit(t.Context()); err != nil || len(info.Files) != 0 || info.Rows != 0 {
		t.Fatalf("empty Commit = %+v, %v", info, err)
	}

	// Rows after a commit go to a new part file.
	if err := s.Write(t.Context(), []transform.Row{rowAt("4-4", d)}); err != nil {
		t.Fatal(err)
	}
	info, err = s.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(dir, "call_date=2026-11-24", "part-"+testRunID+"-00002.parquet")
	if !slices.Equal(info.Files, []string{second}) || info.Rows != 1 {
		t.Fatalf("second CommitInfo = %+v", info)
	}
	if got := len(readValues(t, openParquet(t, filepath.Join(dir, first[0])))); got != 2 {
		t.Errorf("first file has %d rows after the second commit, want 2", got)
	}
}

func TestCloseDiscardsUncommitted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: testRunID}, pqsink.CallInfo)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), []transform.Row{nullRow("1-1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, dir); len(got) != 0 {
		t.Errorf("files after Close without Commit: %v", got)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Write(t.Context(), []transform.Row{nullRow("2-2")}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: "run-a"}, pqsink.CallInfo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: "run-b"}, pqsink.CallInfo)
	if !errors.Is(err, pqsink.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	wantMsg := fmt.Sprintf("output directory %s is in use by another run (lock %s held by pid %d)",
		dir, filepath.Join(dir, ".etl.lock"), os.Getpid())
	if err.Error() != wantMsg {
		t.Errorf("error = %q\nwant %q", err, wantMsg)
	}
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	second, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: "run-b"}, pqsink.CallInfo)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := second.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRemovesStaleTmp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	part := filepath.Join(dir, "call_date=2026-11-20")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := []string{
		"call_date=2026-11-20/notes.txt",
		"call_date=2026-11-20/part-crashed-00000.parquet",
	}
	for _, name := range append([]string{"call_date=2026-11-20/.part-crashed-00001.parquet.tmp"}, keep...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	openSink(t, dir)
	if got := listFiles(t, dir); !slices.Equal(got, keep) {
		t.Errorf("after Open: %v, want %v", got, keep)
	}
}

func TestReusedRunIDDoesNotOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 2 {
		s, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: testRunID}, pqsink.CallInfo)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(t.Context(), []transform.Row{nullRow(strconv.Itoa(i) + "-1")}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"call_date=__HIVE_DEFAULT_PARTITION__/part-" + testRunID + "-00000.parquet",
		"call_date=__HIVE_DEFAULT_PARTITION__/part-" + testRunID + "-00001.parquet",
	}
	if got := listFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
}

func TestWriteErrorNamesPathAndStopsSink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	// A regular file where the partition directory should go.
	blocker := filepath.Join(dir, "call_date=__HIVE_DEFAULT_PARTITION__")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := s.Write(t.Context(), []transform.Row{nullRow("1-1")})
	if err == nil || !strings.Contains(err.Error(), blocker) {
		t.Fatalf("Write error = %v, want one naming %s", err, blocker)
	}
	if _, err := s.Commit(t.Context()); err == nil {
		t.Error("Commit after a failed Write succeeded")
	}
}

func TestCommitErrorNamesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	if err := s.Write(t.Context(), []transform.Row{nullRow("1-1")}); err != nil {
		t.Fatal(err)
	}
	// A non-empty directory at the final name makes the rename fail.
	final := filepath.Join(dir, "call_date=__HIVE_DEFAULT_PARTITION__", "part-"+testRunID+"-00000.parquet")
	if err := os.MkdirAll(filepath.Join(final, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := s.Commit(t.Context())
	if err == nil || !strings.Contains(err.Error(), final) {
		t.Fatalf("Commit error = %v, want one naming %s", err, final)
	}
	for _, f := range listFiles(t, dir) {
		if strings.HasSuffix(f, ".tmp") {
			t.Errorf("temporary file left after failed commit: %s", f)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := pqsink.Config{Dir: "/data", RunID: testRunID}
	tests := []struct {
		name  string
		mod   func(*pqsink.Config)
		field string // "" = valid
	}{
		{"valid", func(*pqsink.Config) {}, ""},
		{"snappy", func(c *pqsink.Config) { c.Compression = "snappy" }, ""},
		{"no dir", func(c *pqsink.Config) { c.Dir = "" }, "Dir"},
		{"no run id", func(c *pqsink.Config) { c.RunID = "" }, "RunID"},
		{"run id with slash", func(c *pqsink.Config) { c.RunID = "a/b" }, "RunID"},
		{"run id hidden", func(c *pqsink.Config) { c.RunID = ".a" }, "RunID"},
		{"run id too long", func(c *pqsink.Config) { c.RunID = strings.Repeat("a", 101) }, "RunID"},
		{"negative row group", func(c *pqsink.Config) { c.RowGroupSize = -1 }, "RowGroupSize"},
		{"negative page", func(c *pqsink.Config) { c.PageSize = -1 }, "PageSize"},
		{"lz4", func(c *pqsink.Config) { c.Compression = "lz4" }, "Compression"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Errorf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

// TestOneDatasetPerDirectory: a directory holds one table's dataset, so
// readers see one schema; directories written before the marker existed hold
// call_info.
func TestOneDatasetPerDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSink(t, dir)
	if err := s.Write(t.Context(), []transform.Row{nullRow("1-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: "run-b"}, pqsink.CallDetail)
	if err == nil || !strings.Contains(err.Error(), "holds the call_info dataset") {
		t.Fatalf("call_detail into a call_info directory: err = %v", err)
	}

	// A directory of call_info files without the marker (written before it).
	if err := os.Remove(filepath.Join(dir, ".etl-dataset")); err != nil {
		t.Fatal(err)
	}
	_, err = pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: "run-c"}, pqsink.CallRecord)
	if err == nil || !strings.Contains(err.Error(), "call_info") {
		t.Fatalf("call_record into a legacy call_info directory: err = %v", err)
	}
	again, err := pqsink.Open(t.Context(), pqsink.Config{Dir: dir, RunID: "run-d"}, pqsink.CallInfo)
	if err != nil {
		t.Fatalf("call_info into its legacy directory: %v", err)
	}
	again.Close(t.Context())
	b, err := os.ReadFile(filepath.Join(dir, ".etl-dataset"))
	if err != nil || string(b) != "call_info\n" {
		t.Fatalf(".etl-dataset = %q, %v; want call_info", b, err)
	}
}
