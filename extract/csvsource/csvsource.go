// Package csvsource streams call keys (ccId, vdn, callId) from a CSV file.
//
// The first non-blank row is a header naming the columns (case-insensitively,
// surrounding spaces ignored): callId or call_id is required; ccId/cc_id and
// vdn may be left out when Config gives a default. Other columns are ignored.
// The file may be UTF-8 with or without a byte order mark, with LF or CRLF
// line ends, quoted fields and blank lines.
//
// Rows are read one at a time through encoding/csv with ReuseRecord, so memory
// stays flat however long the file is. A bad row does not stop the reader: it
// comes back as an Item with Err set (naming the field) and the physical line
// where the row starts, and the next call continues with the following row.
// Repeated keys are returned as they come; de-duplication across sources is
// the job's business.
package csvsource

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

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
	// before defaults), for reject records. Empty for a missing column and
	// for rows that failed CSV parsing.
	Raw [3]string
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
// except that BytesRead and Size may be called from any goroutine.
type Reader struct {
	cfg   Config
	name  string   // file name for messages ("stdin" for "-")
	file  *os.File // nil for stdin, which we never close
	count *countingReader
	br    *bufio.Reader
	cr    *csv.Reader
	size  int64
	info  os.FileInfo // at Open; nil unless a regular file
	col   [3]int      // column index of ccId, vdn, callId; -1 when absent
	ncols int         // fields per row, from the header
	line  int64       // start line of the last row returned, for fatal errors
	err   error       // sticky: io.EOF, a fatal error, or closed
}

// bufSize is the read buffer; csv.NewReader adopts a *bufio.Reader of at
// least 4 KiB as is, so BOM sniffing and CSV parsing share one buffer.
const bufSize = 64 << 10

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
	r.count = &countingReader{r: in}
	r.br = bufio.NewReaderSize(r.count, bufSize)
	if err := r.start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// start skips a UTF-8 byte order mark and reads the header.
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

	r.cr = csv.NewReader(r.br)
	r.cr.ReuseRecord = true
	r.cr.FieldsPerRecord = -1 // we check the count ourselves, to reject and go on
	r.cr.LazyQuotes = false
	// Accept `1, 2, "3-4"`: without this a space before a quote is a
	// bare-quote error. Cells are trimmed anyway.
	r.cr.TrimLeadingSpace = true

	rec, err := r.cr.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: file is empty: expected a header row such as ccId,vdn,callId", r.name)
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: header on line %d: %w", r.name, pe.StartLine, err)
	}
	if err != nil {
		return fmt.Errorf("%s: read header: %w", r.name, err)
	}
	line, _ := r.cr.FieldPos(0)
	r.line = int64(line)

	r.col = [3]int{-1, -1, -1}
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
		return fmt.Errorf("%s: header has no callId column (line %d reads %q; the first row must name the columns, e.g. ccId,vdn,callId)",
			r.name, line, strings.Join(rec, ","))
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
	for r.err == nil {
		rec, err := r.cr.Read()
		if err != nil {
			return r.readError(err)
		}
		line, _ := r.cr.FieldPos(0)
		r.line = int64(line)
		// A line of spaces parses as one empty field: treat it as blank.
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		return r.item(r.line, rec), nil
	}
	return Item{}, r.err
}

func (r *Reader) readError(err error) (Item, error) {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		if err == io.EOF {
			r.err = io.EOF
		} else {
			r.err = fmt.Errorf("%s: read after line %d: %w", r.name, r.line, err)
		}
		return Item{}, r.err
	}
	r.line = int64(pe.StartLine)
	if pe.Line == pe.StartLine {
		// encoding/csv dropped the rest of this line; the next Read
		// starts on the following one.
		return Item{Line: r.line, Err: fmt.Errorf("column %d: %w", pe.Column, pe.Err)}, nil
	}
	// A quoted field ran over line ends and then failed: every line in
	// between was swallowed. If it ran to the end of the file, the quote
	// was never closed and the rest of the file is lost: that must stop
	// the job, not pass as one rejected row.
	if _, perr := r.br.Peek(1); perr == io.EOF {
		r.err = fmt.Errorf("%s: line %d: a quoted field is not closed before the end of the file, lines %d-%d were read as one row: %w",
			r.name, pe.StartLine, pe.StartLine, pe.Line, err)
		return Item{}, r.err
	}
	return Item{Line: r.line, Err: fmt.Errorf("line %d, column %d: %w (the row spans lines %d-%d)",
		pe.Line, pe.Column, pe.Err, pe.StartLine, pe.Line)}, nil
}

// item converts one record. Rejects allocate; a good row allocates only the
// callId copy.
func (r *Reader) item(line int64, rec []string) Item {
	it := Item{Line: line}
	for k, i := range r.col {
		if i >= 0 && i < len(rec) {
			it.Raw[k] = strings.TrimSpace(rec[i])
		}
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
	// The cell is a slice of the whole row's string; a copy keeps keys that
	// outlive the row (queues, retries) from pinning wide rows.
	key.CallID = strings.Clone(key.CallID)
	it.Key = key
	return it
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

// BytesRead returns how many bytes have been read from the input so far. It
// runs ahead of the rows returned by up to the 64 KiB read buffer, which is
// close enough for a progress display. Safe for concurrent use.
func (r *Reader) BytesRead() int64 { return r.count.n.Load() }

// Size returns the file size in bytes, or -1 for standard input and other
// non-regular files.
func (r *Reader) Size() int64 { return r.size }

// RegularFile returns the file's information as of Open when the input is
// a regular file, which can be read again; nil for standard input, pipes and
// other inputs that can be read only once.
func (r *Reader) RegularFile() os.FileInfo { return r.info }

// countingReader counts bytes for BytesRead; atomic because a progress
// display polls it from another goroutine.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
