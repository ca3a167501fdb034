package csvsource

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cmsetl/cms-etl/extract"
)

// format renders an Item compactly so expectations read like the file.
func format(it Item) string {
	if it.Err != nil {
		return fmt.Sprintf("%d reject %q: %v", it.Line, it.Raw, it.Err)
	}
	return fmt.Sprintf("%d ok %s", it.Line, it.Key)
}

// eachItem streams r's items to f, failing the test on a fatal error.
func eachItem(t testing.TB, r *Reader, f func(Item)) {
	t.Helper()
	var last int64
	for {
		it, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("Next after line %d: %v", last, err)
		}
		last = it.Line
		f(it)
	}
}

// readAll drains r into formatted items, failing the test on a fatal error.
func readAll(t testing.TB, r *Reader) []string {
	t.Helper()
	var got []string
	eachItem(t, r, func(it Item) { got = append(got, format(it)) })
	return got
}

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		ccid     int
		vdn      int
		want     []string
		wantRaw0 [3]string // Raw of the first item, when set
	}{
		{file: "basic.csv", want: []string{
			"2 ok 1/1/1795392000123-10457",
			"3 ok 2/3/1659513159000-546750",
			"4 ok 65535/5000/1795392000-1",
		}, wantRaw0: [3]string{"1", "1", "1795392000123-10457"}},
		{file: "bom_crlf.csv", want: []string{
			"2 ok 1/2/1795392000123-1",
			"4 ok 1/3/1795392000456-2",
		}},
		{file: "bom_only_callid.csv", ccid: 5, vdn: 6, want: []string{
			"2 ok 5/6/1795392000123-1",
		}, wantRaw0: [3]string{"", "", "1795392000123-1"}},
		{file: "quoted.csv", want: []string{
			"2 ok 1/2/1795392000123-1",
			"3 ok 1/2/1795392000123-2",
			"6 ok 1/3/1795392000123-3",
			`7 reject ["1,2" "2" "1795392000123-4"]: ccId "1,2": not an integer`,
			`8 reject ["1" "2" "1795392000123-\n5"]: callId "1795392000123-\n5": must be digits-digits`,
			"10 ok 1/1/1795392000123-6",
		}},
		{file: "header_upper_snake.csv", want: []string{"2 ok 1/2/1795392000123-1"}},
		{file: "header_spaces.csv", want: []string{"2 ok 4/5/1795392000123-1"},
			wantRaw0: [3]string{"4", "5", "1795392000123-1"}},
		{file: "header_reordered_extra.csv", want: []string{
			"2 ok 9/7/1795392000123-1",
			"3 ok 10/8/1795392000123-2",
		}, wantRaw0: [3]string{"9", "7", "1795392000123-1"}},
		{file: "callid_only.csv", ccid: 1, vdn: 2, want: []string{
			"2 ok 1/2/1795392000123-1",
			"3 ok 1/2/1795392000-2",
		}},
		{file: "no_vdn.csv", vdn: 4, want: []string{"2 ok 3/4/1795392000123-1"}},
		{file: "header_only.csv", want: nil},
		{file: "blank_lines.csv", want: []string{
			"5 ok 1/1/1795392000123-1",
			"8 ok 1/1/1795392000123-2",
		}},
		{file: "empty_cells.csv", want: []string{
			`2 reject ["" "2" "1795392000123-1"]: ccId "": is empty and --cc-id is not set`,
			`3 reject ["1" "" "1795392000123-2"]: vdn "": is empty and --vdn is not set`,
			`4 reject ["" "" "1795392000123-3"]: ccId "": is empty and --cc-id is not set`,
		}},
		{file: "empty_cells.csv", ccid: 7, vdn: 8, want: []string{
			"2 ok 7/2/1795392000123-1",
			"3 ok 1/8/1795392000123-2",
			"4 ok 7/8/1795392000123-3",
		}},
		// The job de-duplicates across sources; this reader must not.
		{file: "duplicates.csv", want: []string{
			"2 ok 1/1/1795392000123-1",
			"3 ok 1/1/1795392000123-1",
			"4 ok 1/1/1795392000123-1",
		}},
		{file: "bad_rows.csv", want: []string{
			"2 ok 1/1/1795392000123-1",
			`3 reject ["1" "9999" "1795392000123-2"]: vdn "9999": must be 1..5000`,
			`4 reject ["0" "1" "1795392000123-3"]: ccId "0": must be 1..65535`,
			`5 reject ["70000" "1" "1795392000123-4"]: ccId "70000": must be 1..65535`,
			`6 reject ["x" "1" "1795392000123-5"]: ccId "x": not an integer`,
			`7 reject ["1" "1.5" "1795392000123-6"]: vdn "1.5": not an integer`,
			`8 reject ["1" "99999999999999999999" "1795392000123-7"]: vdn "99999999999999999999": must be 1..5000`,
			`9 reject ["1" "1" "abc-12"]: callId "abc-12": must be digits-digits`,
			`10 reject ["1" "1" "123456789012345-123456"]: callId "123456789012345-123456": longer than 20 characters`,
			`11 reject ["1" "1" ""]: callId "": is empty`,
			`12 reject ["1" "2" ""]: expected 3 fields, got 2`,
			`13 reject ["1" "2" "1795392000123-8"]: expected 3 fields, got 4`,
			`14 reject ["1" "-3" "1795392000123-9"]: vdn "-3": must be 1..5000`,
			"15 ok 1/1/1795392000123-10",
		}},
		{file: "parse_errors.csv", want: []string{
			"2 ok 1/1/1795392000123-1",
			`3 reject ["" "" ""]: column 13: bare " in non-quoted-field`,
			`4 reject ["" "" ""]: column 21: extraneous or missing " in quoted-field`,
			"5 ok 1/1/1795392000123-4",
		}},
		{file: "quote_span.csv", want: []string{
			"2 ok 1/1/1795392000123-1",
			`3 reject ["" "" ""]: line 5, column 5: extraneous or missing " in quoted-field (the row spans lines 3-5)`,
			"6 ok 1/1/1795392000123-5",
		}},
		{file: "quote_unclosed_lastline.csv", want: []string{
			"2 ok 1/1/1795392000123-1",
			`3 reject ["" "" ""]: column 22: extraneous or missing " in quoted-field`,
		}},
		{file: "no_final_newline.csv", want: []string{
			"2 ok 1/1/1795392000123-1",
			"3 ok 1/1/1795392000123-2",
		}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/cc%d/vdn%d", tc.file, tc.ccid, tc.vdn), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tc.file)
			r, err := Open(Config{Path: path, DefaultCCID: tc.ccid, DefaultVDN: tc.vdn})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer r.Close()

			var got []string
			var first *Item
			for {
				it, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next after %q: %v", got, err)
				}
				if first == nil {
					first = &it
				}
				got = append(got, format(it))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("items:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			if tc.wantRaw0 != [3]string{} && (first == nil || first.Raw != tc.wantRaw0) {
				t.Errorf("first item = %+v, want Raw %q", first, tc.wantRaw0)
			}

			// EOF is sticky, and the whole file was counted.
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after EOF: %v, want io.EOF", err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != fi.Size() {
				t.Errorf("Size() = %d, want %d", r.Size(), fi.Size())
			}
			if r.Path() != path {
				t.Errorf("Path() = %q, want %q", r.Path(), path)
			}
		})
	}
}

func TestRejectErrorsNameTheField(t *testing.T) {
	t.Parallel()
	r, err := Open(Config{Path: "testdata/bad_rows.csv"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wantField := map[int64]string{3: "vdn", 4: "ccId", 6: "ccId", 7: "vdn", 9: "callId", 11: "callId"}
	eachItem(t, r, func(it Item) {
		want, ok := wantField[it.Line]
		if !ok {
			return
		}
		var fe *extract.FieldError
		if !errors.As(it.Err, &fe) || fe.Field != want {
			t.Errorf("line %d: Err = %v, want an *extract.FieldError for %s", it.Line, it.Err, want)
		}
		delete(wantField, it.Line)
	})
	if len(wantField) != 0 {
		t.Errorf("lines never seen: %v", wantField)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		ccid, vdn int
		want      string // the whole message after "testdata/<file>: "
	}{
		{file: "callid_only.csv", want: "header has no ccId column and --cc-id is not set"},
		{file: "callid_only.csv", ccid: 1, want: "header has no vdn column and --vdn is not set"},
		{file: "no_vdn.csv", want: "header has no vdn column and --vdn is not set"},
		{file: "no_callid.csv", ccid: 1, vdn: 1,
			want: `header has no callId column (line 1 reads "ccId,vdn"; the first row must name the columns, e.g. ccId,vdn,callId)`},
		{file: "no_header.csv",
			want: `header has no callId column (line 1 reads "1,2,1795392000123-1"; the first row must name the columns, e.g. ccId,vdn,callId)`},
		{file: "dup_header.csv", want: "header on line 1 has two callId columns (2 and 4)"},
		{file: "empty.csv", want: "file is empty: expected a header row such as ccId,vdn,callId"},
		{file: "blank_only.csv", want: "file is empty: expected a header row such as ccId,vdn,callId"},
		{file: "utf16.csv", want: "file is UTF-16; save it as UTF-8 CSV"},
		{file: "cr_only.csv", want: `line endings are CR only (old Mac format); convert with: tr '\r' '\n' < testdata/cr_only.csv > fixed.csv`},
		{file: "header_parse_error.csv",
			want: `header on line 1: parse error on line 1, column 15: extraneous or missing " in quoted-field`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/cc%d/vdn%d", tc.file, tc.ccid, tc.vdn), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tc.file)
			r, err := Open(Config{Path: path, DefaultCCID: tc.ccid, DefaultVDN: tc.vdn})
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if want := path + ": " + tc.want; err.Error() != want {
				t.Errorf("Open error:\n got: %v\nwant: %s", err, want)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		_, err := Open(Config{Path: filepath.Join(t.TempDir(), "nope.csv")})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope.csv") {
			t.Errorf("Open error = %v, want a not-exist error naming the file", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, err := Open(Config{Path: dir})
		if err == nil || !strings.Contains(err.Error(), dir+": is a directory") {
			t.Errorf("Open error = %v, want it to say %s is a directory", err, dir)
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		t.Parallel()
		_, err := Open(Config{Path: "testdata/basic.csv", DefaultVDN: 5001})
		if err == nil || !strings.Contains(err.Error(), "DefaultVDN") {
			t.Errorf("Open error = %v, want the config error", err)
		}
	})
}

func TestUnclosedQuoteIsFatal(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "quote_unclosed.csv")
	r, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	it, err := r.Next()
	if err != nil || format(it) != "2 ok 1/1/1795392000123-1" {
		t.Fatalf("first Next = %s, %v", format(it), err)
	}
	_, err = r.Next()
	want := path + ": line 3: a quoted field is not closed before the end of the file, lines 3-5 were read as one row: "
	var pe *csv.ParseError
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.As(err, &pe) {
		t.Fatalf("second Next error = %v, want a wrapped *csv.ParseError starting %q", err, want)
	}
	if _, again := r.Next(); again != err {
		t.Errorf("Next after the fatal error = %v, want the same error", again)
	}
}

// allocatedBy returns the bytes the process allocated while f ran.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// writeLines writes a file of the given lines, each ended by "\n".
func writeLines(t testing.TB, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Issue 9, defect 4: a 50 MB line cost 355 MB of memory and came back whole
// in the reject reason. A line over MaxRowBytes is rejected with its number
// without being held in memory, and the rows around it are read. Not
// parallel: allocatedBy counts the whole process.
func TestLongLineIsRejectedWithoutBeingHeld(t *testing.T) {
	const huge = 8 << 20
	fits := "1,1,1795392000123-3," + strings.Repeat("x", MaxRowBytes-len("1,1,1795392000123-3,")-1) // with "\n": MaxRowBytes
	path := writeLines(t,
		"ccId,vdn,callId,note",
		"1,1,1795392000123-1,a",
		"1,1,"+strings.Repeat("7", huge)+",b",
		"1,1,1795392000123-2,c",
		fits,
		fits+"y",
		`1,1,"1795392000123-4",`+strings.Repeat("q", MaxRowBytes),
		"1,1,"+strings.Repeat("8", 1000)+",d",
		"1,1,1795392000123-5,e",
	)
	r, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	alloc := allocatedBy(func() { got = readAll(t, r) })
	want := []string{
		"2 ok 1/1/1795392000123-1",
		fmt.Sprintf(`3 reject ["" "" ""]: line is %d bytes long; the limit is 65536 bytes`, huge+len("1,1,,b\n")),
		"4 ok 1/1/1795392000123-2",
		"5 ok 1/1/1795392000123-3",
		`6 reject ["" "" ""]: line is 65537 bytes long; the limit is 65536 bytes`,
		`7 reject ["" "" ""]: line is 65559 bytes long; the limit is 65536 bytes`,
		`8 reject ["1" "1" "` + strings.Repeat("8", 1000) + `"]: callId "` + strings.Repeat("8", 80) + `"... (1000 bytes): longer than 20 characters`,
		"9 ok 1/1/1795392000123-5",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("items:\n got: %.300q\nwant: %.300q", got, want)
	}
	if alloc > 1<<20 {
		t.Errorf("reading a file with an %d MB line allocated %d KB, want under 1 MB", huge>>20, alloc>>10)
	}
}

// An unclosed quote early in a big file made encoding/csv buffer the rest of
// the file as one field. Not parallel: allocatedBy counts the whole process.
func TestUnclosedQuoteStopsAtTheLimit(t *testing.T) {
	lines := []string{"ccId,vdn,callId", "1,1,1795392000123-1", `1,1,"1795392000123-2`}
	for i := range 200_000 {
		lines = append(lines, fmt.Sprintf("1,1,1795392000123-%d", 10+i))
	}
	path := writeLines(t, lines...)
	r, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var fatal error
	alloc := allocatedBy(func() {
		if it, err := r.Next(); err != nil || it.Err != nil {
			t.Fatalf("first row: %v %v", err, it.Err)
		}
		_, fatal = r.Next()
	})
	want := path + ": line 3: a quoted field runs on for lines 3-"
	if fatal == nil || !strings.HasPrefix(fatal.Error(), want) || !strings.Contains(fatal.Error(), "is a quote not closed?") {
		t.Fatalf("Next = %v, want a fatal error starting %q", fatal, want)
	}
	if alloc > 1<<20 {
		t.Errorf("the unclosed quote made the reader allocate %d KB, want under 1 MB", alloc>>10)
	}
	if _, again := r.Next(); again != fatal {
		t.Errorf("Next after the fatal error = %v, want the same error", again)
	}
}

func TestHeaderBounds(t *testing.T) {
	t.Parallel()
	long := writeLines(t, "ccId,vdn,"+strings.Repeat("h", MaxRowBytes), "1,1,1-1")
	if _, err := Open(Config{Path: long}); err == nil || err.Error() != long+": header on line 1: line is 65546 bytes long; the limit is 65536 bytes" {
		t.Errorf("Open = %v", err)
	}
	wide := writeLines(t, "ccId,vdn,"+strings.Repeat("h", 500))
	want := wide + `: header has no callId column (line 1 reads "ccId,vdn,` + strings.Repeat("h", 71) + `"... (509 bytes); the first row`
	if _, err := Open(Config{Path: wide}); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Open = %v, want it to start %q", err, want)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{Config{Path: "a.csv"}, ""},
		{Config{Path: "-", DefaultCCID: 65535, DefaultVDN: 5000}, ""},
		{Config{Path: "a.csv", DefaultCCID: 1, DefaultVDN: 1}, ""},
		{Config{}, "Path is empty"},
		{Config{Path: "a.csv", DefaultCCID: -1}, "DefaultCCID -1: must be 0 (not set) or 1..65535"},
		{Config{Path: "a.csv", DefaultCCID: 65536}, "DefaultCCID 65536"},
		{Config{Path: "a.csv", DefaultVDN: -2}, "DefaultVDN -2: must be 0 (not set) or 1..5000"},
		{Config{Path: "a.csv", DefaultVDN: 5001}, "DefaultVDN 5001"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	r, err := Open(Config{Path: "testdata/basic.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.Next(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Next after Close = %v, want os.ErrClosed", err)
	}
}

// TestStdin swaps os.Stdin, so it must not run in parallel with anything.
func TestStdin(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	saved := os.Stdin
	os.Stdin = pr
	defer func() { os.Stdin = saved }()

	const input = "\xEF\xBB\xBFcallId,vdn\r\n1795392000123-1,2\r\n1795392000123-2,5001\r\n"
	go func() {
		pw.WriteString(input)
		pw.Close()
	}()

	r, err := Open(Config{Path: "-", DefaultCCID: 9})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	want := []string{
		"2 ok 9/2/1795392000123-1",
		`3 reject ["" "5001" "1795392000123-2"]: vdn "5001": must be 1..5000`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("items:\n got: %q\nwant: %q", got, want)
	}
	if r.Path() != "-" || r.Size() != -1 {
		t.Errorf("Path() = %q, Size() = %d; want -, -1", r.Path(), r.Size())
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Closing the reader must leave the process's stdin open.
	if _, err := pr.Stat(); err != nil {
		t.Errorf("stdin was closed: %v", err)
	}

	// Messages name "stdin" rather than "-".
	pr2, pw2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr2.Close()
	os.Stdin = pr2
	pw2.Close()
	if _, err := Open(Config{Path: "-"}); err == nil || !strings.HasPrefix(err.Error(), "stdin: file is empty") {
		t.Errorf("Open of empty stdin = %v, want an error starting \"stdin: file is empty\"", err)
	}
}

// writeBig writes a CRLF file with n data rows, a blank line every 10,000
// lines and a bad vdn every 50,000 rows; it returns the rejected lines.
func writeBig(t testing.TB, path string, n int) (rejectLines []int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("ccId,vdn,callId\r\n")
	line := int64(1)
	for i := 1; i <= n; i++ {
		line++
		if line%10000 == 0 {
			w.WriteString("\r\n")
			line++
		}
		vdn := i%3 + 1
		if i%50000 == 0 {
			vdn = 0
			rejectLines = append(rejectLines, line)
		}
		fmt.Fprintf(w, "%d,%d,%d-%d\r\n", i%7+1, vdn, 1795392000000+int64(i)*37, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return rejectLines
}

func TestLargeFile(t *testing.T) {
	t.Parallel()
	const n = 200_000
	path := filepath.Join(t.TempDir(), "big.csv")
	wantRejects := writeBig(t, path, n)

	r, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ok int
	var rejects []int64
	eachItem(t, r, func(it Item) {
		if it.Err != nil {
			rejects = append(rejects, it.Line)
			if !strings.HasPrefix(it.Err.Error(), `vdn "0": `) {
				t.Errorf("line %d: reason %v, want the vdn", it.Line, it.Err)
			}
			return
		}
		ok++
	})
	if ok != n-len(wantRejects) {
		t.Errorf("read %d good rows, want %d", ok, n-len(wantRejects))
	}
	if fmt.Sprint(rejects) != fmt.Sprint(wantRejects) {
		t.Errorf("rejected lines %v, want %v", rejects, wantRejects)
	}
}

// TestAllocsPerRow keeps the streaming promise: a good row costs the CSV
// line string plus the callId copy, whatever the file length. Not parallel:
// AllocsPerRun counts the whole process's allocations.
func TestAllocsPerRow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.csv")
	writeBig(t, path, 3000)
	r, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	allocs := testing.AllocsPerRun(2000, func() {
		it, err := r.Next()
		if err != nil || it.Err != nil {
			t.Fatalf("Next: %v %v", err, it.Err)
		}
	})
	if allocs > 2 {
		t.Errorf("%.1f allocations per row, want <= 2", allocs)
	}
}

// TestDemoInput checks the demo's embedded default input against what its
// README promises.
func TestDemoInput(t *testing.T) {
	t.Parallel()
	r, err := Open(Config{Path: filepath.Join("..", "..", "testdata", "calls.csv")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows, good int
	var rejects []string
	seen := map[extract.Digest]bool{}
	eachItem(t, r, func(it Item) {
		rows++
		if it.Err != nil {
			rejects = append(rejects, it.Err.Error())
			return
		}
		good++
		if it.Key.CCID != 1 || it.Key.VDN < 1 || it.Key.VDN > 3 {
			t.Errorf("line %d: key %s, want ccId 1 and vdn 1..3", it.Line, it.Key)
		}
		seen[it.Key.Digest()] = true
	})
	wantRejects := []string{`vdn "9999": must be 1..5000`, `callId "abc-12": must be digits-digits`, "expected 3 fields, got 2"}
	if rows != 300 || good != 297 || len(seen) != 295 || strings.Join(rejects, "|") != strings.Join(wantRejects, "|") {
		t.Errorf("rows %d, good %d, distinct %d, rejects %q; want 300, 297, 295, %q", rows, good, len(seen), rejects, wantRejects)
	}
}

// BenchmarkRead reports rows/s and, with -benchmem, allocations per row
// (one op is one row).
func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.csv")
	writeBig(b, path, 100_000)
	benchRead(b, path)
}

// BenchmarkReadQuoted reads rows whose every cell is quoted (encoding/csv's
// path).
func BenchmarkReadQuoted(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("ccId,vdn,callId\n")
	for i := 1; i <= 100_000; i++ {
		fmt.Fprintf(w, "\"%d\",\"%d\",\"%d-%d\"\n", i%7+1, i%3+1, 1795392000000+int64(i)*37, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	benchRead(b, path)
}

func benchRead(b *testing.B, path string) {
	open := func() *Reader {
		r, err := Open(Config{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	r := open()
	b.ReportAllocs()
	for b.Loop() {
		_, err := r.Next()
		if err == io.EOF {
			r.Close()
			r = open()
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	r.Close()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// Items outlive their row until their batch commits: they must not pin the
// row's line. 2,000 kept items of 4 KB-wide rows hold well under their
// lines' 8 MB. Not parallel: it measures the heap.
func TestItemsDoNotPinTheirLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wide.csv")
	var b strings.Builder
	b.WriteString("ccId,vdn,callId,notes\n")
	wide := strings.Repeat("x", 4000)
	for i := range 2000 {
		fmt.Fprintf(&b, "%d,%d,1659513159000-%d,%s\n", 1+i%2, 1+i%3, i, wide)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	r, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	kept := make([]Item, 0, 2000)
	for {
		it, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil || it.Err != nil {
			t.Fatal(err, it.Err)
		}
		kept = append(kept, it)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if held := int64(after.HeapAlloc) - int64(before.HeapAlloc); held > 2<<20 || len(kept) != 2000 {
		t.Fatalf("%d items hold %d bytes of heap: they pin their lines", len(kept), held)
	}
	runtime.KeepAlive(kept)
}

// The optional isCallIn column gives each row's direction when the caller
// asks for it (Config.Direction: the CDR query): true/false or 1/0 in any
// case, empty for unknown; any other value rejects the row, naming the
// column as the header spells it, and the reader goes on. Not asked for, the
// column is ignored like any other: a basic-query file with the producer's
// own spelling (Y/N), or two such columns, reads as it always did.
func TestDirectionColumn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		direction  bool
		want       []string // items; nil with openErr
		openErr    string
	}{
		{name: "asked", path: "testdata/direction.csv", direction: true, want: []string{
			"2 1/25/1762523104-25001 inbound=true",
			"3 1/25/1762523105-25002 inbound=false",
			"4 1/25/1762523106-25003 inbound=true",
			"5 1/25/1762523107-25004 inbound=false",
			"6 1/25/1762523108-25005 unknown",
			"7 1/25/1762523109-25006 inbound=true",
			`8 reject isCallIn: isCallIn "yes": want true, false, 1 or 0`,
			"9 1/25/1762523111-25008 inbound=false",
		}},
		{name: "not asked", path: "testdata/direction.csv", want: []string{
			"2 1/25/1762523104-25001 unknown",
			"3 1/25/1762523105-25002 unknown",
			"4 1/25/1762523106-25003 unknown",
			"5 1/25/1762523107-25004 unknown",
			"6 1/25/1762523108-25005 unknown",
			"7 1/25/1762523109-25006 unknown",
			"8 1/25/1762523110-25007 unknown",
			"9 1/25/1762523111-25008 unknown",
		}},
		{name: "producer's Y/N, not asked", path: "testdata/direction_yn.csv", want: []string{
			"2 1/25/1762523104-25001 unknown",
			"3 1/25/1762523105-25002 unknown",
			"4 1/25/1762523106-25003 unknown",
		}},
		{name: "producer's Y/N, asked", path: "testdata/direction_yn.csv", direction: true, want: []string{
			`2 reject is_call_in: is_call_in "Y": want true, false, 1 or 0`,
			`3 reject is_call_in: is_call_in "N": want true, false, 1 or 0`,
			"4 1/25/1762523106-25003 unknown",
		}},
		{name: "no column, asked", path: "testdata/basic.csv", direction: true, want: []string{
			"2 1/1/1795392000123-10457 unknown",
			"3 2/3/1659513159000-546750 unknown",
			"4 65535/5000/1795392000-1 unknown",
		}},
		{name: "two columns, not asked", path: "testdata/dup_direction.csv", want: []string{"2 1/1/1762523104-25001 unknown"}},
		{name: "two columns, asked", path: "testdata/dup_direction.csv", direction: true,
			openErr: `two direction columns, "is_call_in" (column 2) and "isCallIn" (column 3)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := Open(Config{Path: tt.path, DefaultCCID: 1, DefaultVDN: 1, Direction: tt.direction})
			if tt.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.openErr) {
					t.Fatalf("Open = %v, want an error with %q", err, tt.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got []string
			eachItem(t, r, func(it Item) {
				var fe *extract.FieldError
				switch {
				case it.Err != nil && errors.As(it.Err, &fe):
					got = append(got, fmt.Sprintf("%d reject %s: %v", it.Line, fe.Field, it.Err))
				case it.Err != nil:
					got = append(got, fmt.Sprintf("%d reject: %v", it.Line, it.Err))
				case it.Inbound == nil:
					got = append(got, fmt.Sprintf("%d %s unknown", it.Line, it.Key))
				default:
					got = append(got, fmt.Sprintf("%d %s inbound=%v", it.Line, it.Key, *it.Inbound))
				}
			})
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
