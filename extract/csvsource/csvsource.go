// Package csvsource streams call keys (ccId, vdn, callId) from a CSV file.
//
// The first non-blank row is a header naming the columns (case-insensitively,
// surrounding spaces ignored): callId or call_id is required; ccId/cc_id and
// vdn may be left out when Config gives a default. When Config.Direction
// asks for it (the CDR query, whose request names the direction), the
// optional isCallIn (is_call_in) column gives a call's direction: true/false
// or 1/0, empty for unknown. Other columns, and isCallIn when not asked for,
// are ignored: a file made for another consumer, with the producer's own
// spelling of a direction (Y/N), reads as it always did.
// The file may be UTF-8 with or without a byte order mark, with LF or CRLF
// line ends, quoted fields and blank lines. UTF-16 and CR-only line ends are
// refused by name.
//
// Rows are read one line at a time, so memory stays flat however long the
// file is; a row holding a quote goes through encoding/csv (quoted fields may
// span lines). A line, or a row spanning lines, may hold at most MaxRowBytes:
// a longer line is skipped without being held in memory and rejected; a
// quoted field that runs over the limit (most likely a quote never closed)
// stops the reader, naming the line where it started. A bad row does not stop
// the reader: it comes back as an Item with Err set (naming the field) and
// the physical line where the row starts, and the next call continues with
// the following row. Repeated keys are returned as they come; de-duplication
// across sources is the job's business.
package csvsource

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"

	"github.com/cmsetl/cms-etl/extract"
)

// Config says which file to read and which values fill missing key fields.
type Config struct {
	// Path of the CSV file; "-" reads standard input. Required.
	Path string
	// DefaultCCID (flag --cc-id) is used when the header has no ccId column
	// or a row's ccId cell is empty. 0 means not given: then the column is
	// required and rows with an empty ccId are rejected. Otherwise 1..65535.
	DefaultCCID int
	// DefaultVDN (flag --vdn) does the same for vdn. 0 means not given;
	// otherwise 1..5000.
	DefaultVDN int
	// Direction reads and checks the isCallIn column (etl run --query cdr,
	// etl enqueue --query cdr); false ignores it like any unknown column.
	Direction bool
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("csv source config: Path is empty")
	}
	if c.DefaultCCID < 0 || c.DefaultCCID > extract.MaxCCID {
		return fmt.Errorf("csv source config: DefaultCCID %d: must be 0 (not set) or 1..%d", c.DefaultCCID, extract.MaxCCID)
	}
	if c.DefaultVDN < 0 || c.DefaultVDN > extract.MaxVDN {
		return fmt.Errorf("csv source config: DefaultVDN %d: must be 0 (not set) or 1..%d", c.DefaultVDN, extract.MaxVDN)
	}
	return nil
}

// Item is one data row.
type Item struct {
	// Line is the 1-based physical line where the row starts (the header
	// is usually line 1).
	Line int64
	// Key is the parsed key, with defaults applied. Valid only when Err is nil.
	Key extract.Key
	// Raw holds the ccId, vdn and callId cells as read (spaces trimmed,
	// before defaults), for reject records. Empty for a missing column, for
	// rows that failed CSV parsing and for lines over MaxRowBytes.
	Raw [3]string
	// Inbound is the row's isCallIn cell: the call's direction, nil when the
	// header has no such column, the cell is empty or Config.Direction is
	// off.
	Inbound *bool
	// Err is non-nil when the row is rejected; its text names the field
	// (an *extract.FieldError for bad values).
	Err error
}

// Positions in Item.Raw and in Reader.col.
const (
	colCCID = iota
	colVDN
	colCallID
)

// Reader streams Items from one CSV file. It is not safe for concurrent use,
// except that Size may be called from any goroutine.
type Reader struct {
	cfg   Config
	name  string        // file name for messages ("stdin" for "-")
	file  *os.File      // nil for stdin, which we never close
	br    *bufio.Reader // MaxRowBytes: a line that does not fit is too long
	cr    *csv.Reader   // parses rows holding a quote, fed by feed
	feed  lineFeed
	rec   []string // cells of a row without quotes, reused
	size  int64
	info  os.FileInfo          // at Open; nil unless a regular file
	col   [3]int               // column index of ccId, vdn, callId; -1 when absent
	dir   int                  // column index of isCallIn; -1 when absent or not asked for
	dirAs string               // the isCallIn column's name as the header spells it
	seen  [2]map[string]string // ccId and vdn cells met so far, copied (see intern)
	ncols int                  // fields per row, from the header
	line  int64                // physical lines read so far
	err   error                // sticky: io.EOF, a fatal error, or closed
}

// MaxRowBytes bounds one line of the input, line end included, and one row
// whose quoted fields span lines: 64 KiB, a thousand times a real row.
const MaxRowBytes = 64 << 10

// Open opens cfg.Path ("-" means standard input) and reads its header. Errors
// name the file; a missing column names the flag that would supply it.
func Open(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Reader{cfg: cfg, name: cfg.Path, size: -1}
	var in io.Reader
	if cfg.Path == "-" {
		r.name = "stdin"
		in = os.Stdin
	} else {
		f, err := os.Open(cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("open csv input: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open csv input: %w", err)
		}
		if fi.IsDir() {
			f.Close()
			return nil, fmt.Errorf("open csv input: %s: is a directory", cfg.Path)
		}
		if fi.Mode().IsRegular() {
			r.size = fi.Size()
			r.info = fi
		}
		r.file = f
		in = f
	}
	r.br = bufio.NewReaderSize(in, MaxRowBytes)
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// start skips a UTF-8 byte order mark, refuses encodings and line ends it
// cannot read, and reads the header.
func (r *Reader) start() error {
	head, err := r.br.Peek(3)
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: read: %w", r.name, err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("\xEF\xBB\xBF")):
		r.br.Discard(3)
	case bytes.HasPrefix(head, []byte("\xFF\xFE")), bytes.HasPrefix(head, []byte("\xFE\xFF")):
		// Excel's "Unicode text" export; without this check the header
		// would fail with a puzzling "no callId column".
		return fmt.Errorf("%s: file is UTF-16; save it as UTF-8 CSV", r.name)
	}
	// Classic Mac line ends: the whole file would be one line. Judged on
	// what the first read brought (up to the buffer's 64 KiB of a file; what
	// a pipe had ready), never waiting for more: a producer that trickles
	// rows into stdin must not hold the run up. A CR at the very end of it
	// may be the first half of a CRLF.
	head, _ = r.br.Peek(r.br.Buffered())
	if cr := bytes.IndexByte(head, '\r'); bytes.IndexByte(head, '\n') < 0 && cr >= 0 && cr < len(head)-1 {
		return fmt.Errorf("%s: line endings are CR only (old Mac format); convert with: tr '\\r' '\\n' < %s > fixed.csv", r.name, r.name)
	}

	r.cr = csv.NewReader(&r.feed)
	r.cr.ReuseRecord = true
	r.cr.FieldsPerRecord = -1 // we check the count ourselves, to reject and go on
	r.cr.LazyQuotes = false
	// Accept `1, 2, "3-4"`: without this a space before a quote is a
	// bare-quote error. Cells are trimmed anyway.
	r.cr.TrimLeadingSpace = true
	r.feed.r = r

	line, rec, reject, err := r.row()
	if err == io.EOF {
		return fmt.Errorf("%s: file is empty: expected a header row such as ccId,vdn,callId", r.name)
	}
	if err != nil {
		return err
	}
	var pe *csv.ParseError
	if errors.As(reject, &pe) {
		return fmt.Errorf("%s: header on line %d: %w", r.name, pe.StartLine, pe)
	}
	if reject != nil {
		return fmt.Errorf("%s: header on line %d: %w", r.name, line, reject)
	}

	r.col, r.dir = [3]int{-1, -1, -1}, -1
	names := [3]string{"ccId", "vdn", "callId"}
	for i, h := range rec {
		c := -1
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "ccid", "cc_id":
			c = colCCID
		case "vdn":
			c = colVDN
		case "callid", "call_id":
			c = colCallID
		case "iscallin", "is_call_in":
			if !r.cfg.Direction {
				continue
			}
			if r.dir >= 0 {
				return fmt.Errorf("%s: header on line %d has two direction columns, %s (column %d) and %s (column %d)",
					r.name, line, extract.QuoteValue(r.dirAs), r.dir+1, extract.QuoteValue(strings.TrimSpace(h)), i+1)
			}
			r.dir, r.dirAs = i, strings.TrimSpace(h)
		}
		if c < 0 {
			continue
		}
		if r.col[c] >= 0 {
			return fmt.Errorf("%s: header on line %d has two %s columns (%d and %d)", r.name, line, names[c], r.col[c]+1, i+1)
		}
		r.col[c] = i
	}
	r.ncols = len(rec)
	if r.col[colCallID] < 0 {
		return fmt.Errorf("%s: header has no callId column (line %d reads %s; the first row must name the columns, e.g. ccId,vdn,callId)",
			r.name, line, extract.QuoteValue(strings.Join(rec, ",")))
	}
	if r.col[colCCID] < 0 && r.cfg.DefaultCCID == 0 {
		return fmt.Errorf("%s: header has no ccId column and --cc-id is not set", r.name)
	}
	if r.col[colVDN] < 0 && r.cfg.DefaultVDN == 0 {
		return fmt.Errorf("%s: header has no vdn column and --vdn is not set", r.name)
	}
	return nil
}

// Next returns the next data row. A rejected row is an Item with Err set and
// a nil error. The error is io.EOF at the end of the file, and otherwise a
// fatal read error naming the file and line; after either, Next keeps
// returning it.
func (r *Reader) Next() (Item, error) {
	if r.err != nil {
		return Item{}, r.err
	}
	line, rec, reject, err := r.row()
	switch {
	case err != nil:
		r.err = err
		return Item{}, err
	case reject != nil:
		return Item{Line: line, Err: reject}, nil
	}
	return r.item(line, rec), nil
}

// errLineTooLong and errRowTooLong mark input over MaxRowBytes.
var (
	errLineTooLong = errors.New("line too long")
	errRowTooLong  = errors.New("row too long")
)

// readLine returns the next physical line with its line end (a slice of the
// read buffer, valid until the next read) and counts it. A line longer than
// MaxRowBytes is read to its end in buffer-sized pieces, none kept: then
// line is nil, n its length and err errLineTooLong. At the end of the input
// err is io.EOF and n is 0.
func (r *Reader) readLine() (line []byte, n int, err error) {
	line, err = r.br.ReadSlice('\n')
	n = len(line)
	if err == bufio.ErrBufferFull {
		for err == bufio.ErrBufferFull {
			var more []byte
			more, err = r.br.ReadSlice('\n')
			n += len(more)
		}
		line = nil
		if err == nil || err == io.EOF {
			err = errLineTooLong
		}
	}
	if err == io.EOF && n > 0 {
		err = nil // the last line, without a line end
	}
	if n > 0 {
		r.line++
	}
	return line, n, err
}

// row reads the next row that is not blank and returns the line it starts on
// and its cells (valid until the next call). reject is a reason to refuse
// the row that does not stop the reader (a line over the limit, a CSV syntax
// error); err is fatal: io.EOF, a read error, or a quoted field unclosed at
// the end of the file or running over the limit.
func (r *Reader) row() (line int64, rec []string, reject, err error) {
	for {
		raw, n, err := r.readLine()
		switch {
		case err == errLineTooLong:
			return r.line, nil, fmt.Errorf("line is %d bytes long; the limit is %d bytes", n, MaxRowBytes), nil
		case err == io.EOF:
			return r.line, nil, nil, io.EOF
		case err != nil:
			return r.line, nil, nil, fmt.Errorf("%s: read after line %d: %w", r.name, r.line, err)
		}
		body := trimLineEnd(raw)
		if len(bytes.TrimSpace(body)) == 0 {
			continue
		}
		if bytes.IndexByte(body, '"') < 0 {
			return r.line, r.split(body), nil, nil
		}
		line, rec, reject, err = r.quoted(raw, n)
		// A row of one blank quoted cell is as blank as a blank line.
		if err != nil || reject != nil || len(rec) != 1 || strings.TrimSpace(rec[0]) != "" {
			return line, rec, reject, err
		}
	}
}

// trimLineEnd drops "\n" or "\r\n", and a lone "\r" ending the last line,
// as encoding/csv does.
func trimLineEnd(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// split cuts a row without quotes into its cells, as encoding/csv would
// (leading spaces aside: the cells used are trimmed). One string holds the
// whole row.
func (r *Reader) split(body []byte) []string {
	s := string(body)
	rec := r.rec[:0]
	for {
		i := strings.IndexByte(s, ',')
		if i < 0 {
			break
		}
		rec = append(rec, s[:i])
		s = s[i+1:]
	}
	r.rec = append(rec, s)
	return r.rec
}

// quoted parses a row holding a quote with encoding/csv, starting from its
// first line raw (n bytes). csv pulls further lines through r.feed while a
// quoted field runs over a line end. Its line numbers count only the lines
// it was given; errors are translated to the file's.
func (r *Reader) quoted(raw []byte, n int) (line int64, rec []string, reject, err error) {
	start := r.line
	r.feed.cur, r.feed.used, r.feed.eof = raw, n, false
	rec, err = r.cr.Read()
	r.feed.cur = nil
	if err == nil {
		return start, rec, nil, nil
	}
	if errors.Is(err, errRowTooLong) {
		return start, nil, nil, fmt.Errorf("%s: line %d: a quoted field runs on for lines %d-%d, over the limit of %d bytes for one row; is a quote not closed?",
			r.name, start, start, r.line, MaxRowBytes)
	}
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return start, nil, nil, fmt.Errorf("%s: read after line %d: %w", r.name, r.line, err)
	}
	pe.Line = int(start) + pe.Line - pe.StartLine
	pe.StartLine = int(start)
	if pe.Line == pe.StartLine {
		// encoding/csv dropped the rest of this line; the next row
		// starts on the following one.
		return start, nil, &syntaxError{fmt.Sprintf("column %d: %v", pe.Column, pe.Err), pe}, nil
	}
	// A quoted field ran over line ends and then failed: every line in
	// between was swallowed. If it ran to the end of the file, the quote
	// was never closed and the rest of the file is lost: that must stop
	// the job, not pass as one rejected row.
	if r.feed.eof {
		return start, nil, nil, fmt.Errorf("%s: line %d: a quoted field is not closed before the end of the file, lines %d-%d were read as one row: %w",
			r.name, pe.StartLine, pe.StartLine, pe.Line, pe)
	}
	return start, nil, &syntaxError{fmt.Sprintf("line %d, column %d: %v (the row spans lines %d-%d)",
		pe.Line, pe.Column, pe.Err, pe.StartLine, pe.Line), pe}, nil
}

// syntaxError is a row's CSV syntax error worded as a reject reason; it
// unwraps to the *csv.ParseError, with the file's line numbers.
type syntaxError struct {
	reason string
	pe     *csv.ParseError
}

func (e *syntaxError) Error() string { return e.reason }
func (e *syntaxError) Unwrap() error { return e.pe }

// lineFeed is what encoding/csv reads: the first line of the row being
// parsed, then, only when csv asks for more (a quoted field runs over the
// line end), one further line at a time, each counted against the row's
// MaxRowBytes. csv wraps it in its own small buffer, which therefore never
// holds more than the row.
type lineFeed struct {
	r    *Reader
	cur  []byte // rest of the current line, a slice of r.br's buffer
	used int    // bytes of the row so far
	eof  bool   // the input ended while csv asked for more
}

func (f *lineFeed) Read(p []byte) (int, error) {
	if len(f.cur) == 0 {
		line, n, err := f.r.readLine()
		f.used += n
		switch {
		case err == io.EOF:
			f.eof = true
			return 0, io.EOF
		case err == errLineTooLong || f.used > MaxRowBytes:
			return 0, errRowTooLong
		case err != nil:
			return 0, err
		}
		f.cur = line
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// item converts one record. Its cells are copied out of the row (a cell is
// a slice of the whole line, and an item may outlive it until its commit):
// the callId always; ccId and vdn take few values, kept once (interned).
func (r *Reader) item(line int64, rec []string) Item {
	it := Item{Line: line}
	for k, i := range r.col {
		if i < 0 || i >= len(rec) {
			continue
		}
		cell := strings.TrimSpace(rec[i])
		if k == colCallID {
			it.Raw[k] = strings.Clone(cell)
			continue
		}
		it.Raw[k] = r.intern(k, cell)
	}
	if len(rec) != r.ncols {
		it.Err = fmt.Errorf("expected %d fields, got %d", r.ncols, len(rec))
		return it
	}
	ccid, err := number(it.Raw[colCCID], "ccId", r.cfg.DefaultCCID, "--cc-id", extract.MaxCCID)
	if err != nil {
		it.Err = err
		return it
	}
	vdn, err := number(it.Raw[colVDN], "vdn", r.cfg.DefaultVDN, "--vdn", extract.MaxVDN)
	if err != nil {
		it.Err = err
		return it
	}
	key := extract.Key{CCID: ccid, VDN: vdn, CallID: it.Raw[colCallID]}
	if err := key.Validate(); err != nil {
		it.Err = err
		return it
	}
	if r.dir >= 0 {
		if it.Inbound, err = direction(r.dirAs, strings.TrimSpace(rec[r.dir])); err != nil {
			it.Err = err
			return it
		}
	}
	it.Key = key
	return it
}

// maxInterned bounds the cells kept per column: past it, cells are copied
// each time (a file of that many call centers or VDNs is not the usual case).
const maxInterned = 1024

// intern returns a copy of a ccId or vdn cell, the same copy for the same
// text.
func (r *Reader) intern(col int, cell string) string {
	if v, ok := r.seen[col][cell]; ok {
		return v
	}
	v := strings.Clone(cell)
	if r.seen[col] == nil {
		r.seen[col] = make(map[string]string)
	}
	if len(r.seen[col]) < maxInterned {
		r.seen[col][v] = v
	}
	return v
}

// number parses a ccId or vdn cell; an empty cell takes the default. The
// range is checked by extract.Key.Validate.
func number(cell, field string, def int, flag string, max int) (int, error) {
	if cell == "" {
		if def != 0 {
			return def, nil
		}
		return 0, &extract.FieldError{Field: field, Value: cell, Reason: "is empty and " + flag + " is not set"}
	}
	n, err := strconv.Atoi(cell)
	if err != nil {
		reason := "not an integer"
		if errors.Is(err, strconv.ErrRange) {
			reason = "must be 1.." + strconv.Itoa(max)
		}
		return 0, &extract.FieldError{Field: field, Value: cell, Reason: reason}
	}
	return n, nil
}

// direction parses an isCallIn cell: true/false or 1/0 (any case); empty is
// unknown (nil). column is the column's name as the header spells it.
func direction(column, cell string) (*bool, error) {
	var in bool
	switch strings.ToLower(cell) {
	case "":
		return nil, nil
	case "true", "1":
		in = true
	case "false", "0":
	default:
		return nil, &extract.FieldError{Field: column, Value: cell, Reason: "want true, false, 1 or 0"}
	}
	return &in, nil
}

// Close closes the file (standard input is left open). Next fails afterwards.
func (r *Reader) Close() error {
	if r.err == nil || r.err == io.EOF {
		r.err = fmt.Errorf("%s: %w", r.name, os.ErrClosed)
	}
	if r.file == nil {
		return nil
	}
	f := r.file
	r.file = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", r.name, err)
	}
	return nil
}

// Path returns Config.Path as given ("-" for standard input).
func (r *Reader) Path() string { return r.cfg.Path }

// Size returns the file size in bytes, or -1 for standard input and other
// non-regular files.
func (r *Reader) Size() int64 { return r.size }

// RegularFile returns the file's information as of Open when the input is
// a regular file, which can be read again; nil for standard input, pipes and
// other inputs that can be read only once.
func (r *Reader) RegularFile() os.FileInfo { return r.info }

// Keys yields the valid keys of the rows still to read, then a fatal read
// error if any; rejected rows go to onReject (may be nil).
func (r *Reader) Keys(onReject func(Item)) iter.Seq2[extract.Key, error] {
	return func(yield func(extract.Key, error) bool) {
		for it, err := range r.Valid(onReject) {
			if !yield(it.Key, err) {
				return
			}
		}
	}
}

// Valid yields the rows still to read that are not rejected (their key and
// direction), then a fatal read error if any; rejected rows go to onReject
// (may be nil).
func (r *Reader) Valid(onReject func(Item)) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		for {
			it, err := r.Next()
			switch {
			case errors.Is(err, io.EOF):
				return
			case err != nil:
				yield(Item{}, err)
				return
			case it.Err != nil:
				if onReject != nil {
					onReject(it)
				}
			case !yield(it, nil):
				return
			}
		}
	}
}
