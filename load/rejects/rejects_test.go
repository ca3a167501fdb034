package rejects_test

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/load"
	"github.com/cmsetl/cms-etl/load/rejects"
)

const runID = "20261124T031500Z-ab12cd"

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv cannot read %s: %v", path, err)
	}
	return recs
}

func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		entry load.Failure
		want  []string
	}{
		{
			name: "failed csv row",
			entry: load.Failure{Line: 17, Key: extract.Key{CCID: 1, VDN: 2, CallID: "1732400000000-5"},
				Raw: [3]string{"1", "2", "1732400000000-5"}, Outcome: load.OutcomeFailed, Reason: "permanent: no such call", ResultCode: "0200001", HTTPStatus: 200, Attempts: 1},
			want: []string{"17", "1", "2", "1732400000000-5", "failed", "permanent: no such call", "0200001", "200", "1"},
		},
		{
			name: "queue row without line, retries exhausted",
			entry: load.Failure{Key: extract.Key{CCID: 65535, VDN: 5000, CallID: "1-2"},
				Outcome: load.OutcomeFailed, Reason: "transient: HTTP 503", HTTPStatus: 503, Attempts: 5},
			want: []string{"", "65535", "5000", "1-2", "failed", "transient: HTTP 503", "", "503", "5"},
		},
		{
			name: "rejected with raw fields and a hostile reason",
			entry: load.Failure{Line: 3, Raw: [3]string{"abc", " 7", "x,\"y\""},
				Outcome: load.OutcomeRejected, Reason: "ccId \"abc\": not a number,\nline two"},
			want: []string{"3", "abc", " 7", "x,\"y\"", "rejected", "ccId \"abc\": not a number,\nline two", "", "", "0"},
		},
		{
			name: "poisoned cells are cleaned",
			entry: load.Failure{Line: 4, Raw: [3]string{"1\x00", "\xff\xfe7", strings.Repeat("9", 3000)},
				Outcome: load.OutcomeRejected, Reason: "bad \xc3", ResultCode: "\x00"},
			want: []string{"4", "1", "\uFFFD7", strings.Repeat("9", load.MaxFailureText) + "...[truncated, 3000 bytes]",
				"rejected", "bad \uFFFD", "", "", "0"},
		},
		{
			name: "formulas are neutralized, numbers are not",
			entry: load.Failure{Line: 5, Raw: [3]string{"=1+2", "-3", "@SUM(A1)"},
				Outcome: load.OutcomeRejected, Reason: "-x: +y", ResultCode: "+1.5"},
			want: []string{"5", "'=1+2", "-3", "'@SUM(A1)", "rejected", "'-x: +y", "+1.5", "", "0"},
		},
		{
			name: "tab, carriage return and a lone sign are formulas too",
			entry: load.Failure{Line: 6, Raw: [3]string{"\t1", "\r2", "-"},
				Outcome: load.OutcomeRejected, Reason: "+", ResultCode: "-1.2.3"},
			want: []string{"6", "'\t1", "'\r2", "'-", "rejected", "'+", "'-1.2.3", "", "0"},
		},
	}
	dir := t.TempDir()
	w, err := rejects.Create(dir, runID)
	if err != nil {
		t.Fatal(err)
	}
	wantPath := filepath.Join(dir, "_rejects", runID+".csv")
	if w.Path() != wantPath {
		t.Errorf("Path = %s, want %s", w.Path(), wantPath)
	}
	want := [][]string{rejects.Header}
	for _, tc := range tests {
		if err := w.Add(tc.entry); err != nil {
			t.Fatalf("%s: Add: %v", tc.name, err)
		}
		want = append(want, tc.want)
	}
	// Flush makes entries readable before Close (the job flushes at each
	// commit).
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := readCSV(t, wantPath); !reflect.DeepEqual(got, want) {
		t.Errorf("after Flush:\n got %q\nwant %q", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := w.Add(tests[0].entry); err == nil {
		t.Error("Add after Close succeeded")
	}
	if got := readCSV(t, wantPath)[0]; strings.Join(got, ",") != "line,cc_id,vdn,call_id,outcome,reason,result_code,http_status,attempts" {
		t.Errorf("header = %q", got)
	}
}

func TestNoFileWithoutRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := rejects.Create(dir, runID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "_rejects"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("_rejects holds %d entries, want none", len(entries))
	}
}

func TestRerunAppendsWithoutSecondHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, line := range []int64{1, 2} {
		w, err := rejects.Create(dir, runID)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(load.Failure{Line: line, Key: extract.Key{CCID: 1, VDN: 1, CallID: "1-1"}, Outcome: load.OutcomeRejected, Reason: "dup"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got := readCSV(t, filepath.Join(dir, "_rejects", runID+".csv"))
	if len(got) != 3 || got[1][0] != "1" || got[2][0] != "2" {
		t.Errorf("file = %q, want header and two rows", got)
	}
}

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, id := range []string{"", "a/b", ".hidden"} {
		if _, err := rejects.Create(dir, id); err == nil {
			t.Errorf("Create(%q) succeeded", id)
		}
	}
	w, err := rejects.Create(dir, runID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(load.Failure{Outcome: "ok"}); err == nil || !strings.Contains(err.Error(), "outcome") {
		t.Errorf("Add with outcome ok = %v, want an error naming outcome", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Path()); !os.IsNotExist(err) {
		t.Errorf("file exists after only invalid entries: %v", err)
	}
}

func TestCreateFailsOnBlockedDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "_rejects"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rejects.Create(dir, runID); err == nil || !strings.Contains(err.Error(), "_rejects") {
		t.Errorf("Create = %v, want an error naming _rejects", err)
	}
}
