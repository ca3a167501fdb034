// Package rejects records the keys a run could not load, with the reason, in
// DIR/_rejects/<run>.csv, so an operator can inspect and re-feed them.
package rejects

import (
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/cmsetl/cms-etl/load"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cmsetl/cms-etl/extract"
)

// Header is the first line of every rejects file.
var Header = []string{"line", "cc_id", "vdn", "call_id", "outcome", "reason", "result_code", "http_status", "attempts"}

// Outcomes.
const (
	Failed   = "failed"   // sent, but no usable answer (permanent error, retries exhausted)
	Rejected = "rejected" // never sent: the input or key was invalid
)

// Entry is one failed or rejected key.
type Entry struct {
	Line int64 // input line number; 0 for inputs without lines (the queue)
	Key  extract.Key
	// RawCCID, RawVDN and RawCallID are the fields as read, for rejected rows
	// whose key did not parse. When any is set they are written instead of
	// Key.
	RawCCID, RawVDN, RawCallID string
	Outcome                    string // Failed or Rejected
	Reason                     string
	ResultCode                 string // the API's resultCode, if any
	HTTPStatus                 int    // 0: no HTTP response
	Attempts                   int
}

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

// Add writes one entry (buffered; Flush makes it durable).
func (w *Writer) Add(e Entry) error {
	if e.Outcome != Failed && e.Outcome != Rejected {
		return fmt.Errorf("rejects entry: outcome %q is not %q or %q", e.Outcome, Failed, Rejected)
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
	if err := w.cw.Write(record(e)); err != nil {
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

func record(e Entry) []string {
	ccID, vdn, callID := strconv.Itoa(e.Key.CCID), strconv.Itoa(e.Key.VDN), e.Key.CallID
	if e.RawCCID != "" || e.RawVDN != "" || e.RawCallID != "" {
		ccID, vdn, callID = e.RawCCID, e.RawVDN, e.RawCallID
	}
	line := ""
	if e.Line > 0 {
		line = strconv.FormatInt(e.Line, 10)
	}
	status := ""
	if e.HTTPStatus != 0 {
		status = strconv.Itoa(e.HTTPStatus)
	}
	return []string{line, ccID, vdn, callID, e.Outcome, e.Reason, e.ResultCode, status, strconv.Itoa(e.Attempts)}
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
