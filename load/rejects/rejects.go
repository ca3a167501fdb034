// Package rejects records the keys a run could not load, with the reason, in
// DIR/_rejects/<run>.csv, so an operator can inspect and re-feed them.
//
// The file is meant to be opened in a spreadsheet too. Every record is
// load.Failure's Clean copy (valid UTF-8, no NUL, long cells cut), and a text
// cell a spreadsheet would evaluate as a formula (starting with =, +, -, @,
// tab or carriage return) is written with a leading apostrophe, as OWASP
// recommends against CSV injection. Plain numbers such as -5 or +1 are left as
// they are: a spreadsheet reads them as numbers, not formulas, and an
// operator re-feeding a row should see the value that was rejected.
package rejects

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cmsetl/cms-etl/load"
)

// Header is the first line of every rejects file.
var Header = []string{"line", "cc_id", "vdn", "call_id", "outcome", "reason", "result_code", "http_status", "attempts"}

// Writer appends entries to one run's rejects file. It is safe for
// concurrent use.
type Writer struct {
	dir  string
	path string

	mu     sync.Mutex
	f      *os.File
	cw     *csv.Writer
	synced bool // the file's directory entry is durable
	closed bool
}

// Create prepares DIR/_rejects/. The file itself is created on the first
// Add, so a run without rejects leaves no empty file.
func Create(dir, runID string) (*Writer, error) {
	if err := load.ValidateRunID(runID); err != nil {
		return nil, fmt.Errorf("rejects file: run id %w", err)
	}
	rdir := filepath.Join(dir, "_rejects")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return nil, fmt.Errorf("create rejects directory: %w", err)
	}
	return &Writer{dir: rdir, path: filepath.Join(rdir, runID+".csv")}, nil
}

// Path returns the rejects file's path, whether or not it exists yet.
func (w *Writer) Path() string { return w.path }

// Add writes one failure (buffered; Flush makes it durable).
func (w *Writer) Add(f load.Failure) error {
	if err := f.Validate(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("rejects file: writer is closed")
	}
	if w.cw == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	if err := w.cw.Write(record(f.Clean())); err != nil {
		return fmt.Errorf("write rejects file %s: %w", w.path, err)
	}
	return nil
}

// open creates the file, or appends to it when a rerun with the same run
// id finds it; the header is written only into an empty file.
func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open rejects file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat rejects file: %w", err)
	}
	cw := csv.NewWriter(f)
	if st.Size() == 0 {
		if err := cw.Write(Header); err != nil {
			_ = f.Close()
			return fmt.Errorf("write rejects file %s: %w", w.path, err)
		}
	}
	w.f, w.cw = f, cw
	return nil
}

// record renders a cleaned failure. The key columns hold the parsed key, or
// the cells as read when the key did not parse.
func record(f load.Failure) []string {
	ccID, vdn, callID := strconv.Itoa(f.Key.CCID), strconv.Itoa(f.Key.VDN), f.Key.CallID
	if f.Key.Validate() != nil && f.Raw != [3]string{} {
		ccID, vdn, callID = neutralize(f.Raw[0]), neutralize(f.Raw[1]), neutralize(f.Raw[2])
	}
	line := ""
	if f.Line > 0 {
		line = strconv.FormatInt(f.Line, 10)
	}
	status := ""
	if f.HTTPStatus != 0 {
		status = strconv.Itoa(f.HTTPStatus)
	}
	return []string{line, ccID, vdn, callID, f.Outcome, neutralize(f.Reason), neutralize(f.ResultCode), status, strconv.Itoa(f.Attempts)}
}

// neutralize prefixes a cell a spreadsheet would run as a formula with an
// apostrophe (see the package comment); plain numbers stay as they are.
func neutralize(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '@', '\t', '\r':
	case '+', '-':
		if plainNumber(cell[1:]) {
			return cell
		}
	default:
		return cell
	}
	return "'" + cell
}

// plainNumber reports whether s is digits with at most one decimal point
// between digits: what follows the sign of a number a spreadsheet reads as
// a value.
func plainNumber(s string) bool {
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// Flush writes buffered entries and fsyncs the file (and, the first time,
// its directory). Nothing to do before the first Add.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

func (w *Writer) flush() error {
	if w.cw == nil {
		return nil
	}
	w.cw.Flush()
	if err := w.cw.Error(); err != nil {
		return fmt.Errorf("write rejects file %s: %w", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync rejects file %s: %w", w.path, err)
	}
	if !w.synced {
		// The file's entry in _rejects, and _rejects' own entry in DIR,
		// which Create may have just made.
		if err := load.SyncDir(w.dir); err != nil {
			return err
		}
		if err := load.SyncDir(filepath.Dir(w.dir)); err != nil {
			return err
		}
		w.synced = true
	}
	return nil
}

// Close flushes and closes the file. Later calls return nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.flush()
	if cerr := w.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close rejects file %s: %w", w.path, cerr))
	}
	return err
}
